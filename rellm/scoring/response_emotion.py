"""Does the response follow the heard emotion? A text classifier reads the emotion back from a response.

Our addition, not the paper's metric (the paper scores empathy with EPITOME,
docs/evaluation.md#scoring-a-system, and emotion perception with SER UA,
docs/evaluation.md#ser-unweighted-accuracy). On the mini corpus the emotion lives only in the prosody: every
sentence is spoken in all five styles with the same words. EPITOME reads the words of a response, not
whether they fit the speaker's emotion, and SER UA shows that the model hears the emotion, not that its
response uses it. The claim the paper rests on is that the response changes with the heard emotion;
this measures exactly that.

How: a TF-IDF + logistic-regression classifier (scikit-learn, fixed seed, options from
``conf/score.yaml``) is trained on the teacher's expected responses of the training split (stage 3,
``exp/responses/<split>/<train_set>/expected.jsonl``), whose emotion is the one the teacher was told.
It is applied to each system's test responses; its unweighted accuracy against the utterance's reference
emotion is the system's *response-emotion UA* (``ser_metrics.ser_metrics`` on the predicted labels, so
UA is the same mean per-class recall as for SER). An empty response names no emotion: it counts as
wrong (``unknown``), like an unparsed SER answer. Chance is 1 / (number of classes), 0.20 on mini.

Reference figures, from the same classifier:
- the teacher's own expected responses for the test utterances (stage 3 run on the test sets, never
  used for training): what perfect emotion perception plus the teacher gives, the ceiling;
- the classifier's cross-validated UA on the training responses, folds grouped by transcript (the same
  sentence never lands in training and held-out folds): a sanity figure for the classifier itself.

The distinct-response check (``distinct_responses``) counts test utterances that got the same response
as another test utterance: a system that collapsed to a few generic replies shows up there.
"""
import logging
import re
from collections import Counter
from pathlib import Path

from rellm.data.emotions import EMOTIONS
from rellm.data.ser_metrics import UNKNOWN, ser_metrics
from rellm.scoring.metric_registry import metrics as registered_metrics
from rellm.utils.io import read_jsonl

logger = logging.getLogger(__name__)

EXPECTED_FIELDS = ("utt_id", "emotion", "transcript", "output")
CLASSIFIER_KEYS = ("ngram_max", "min_df", "sublinear_tf", "analyzer", "C", "class_weight", "max_iter", "seed")


def expected_path(responses_root, test_or_train_set):
    """``<responses_root>/<set>/expected.jsonl`` (stage 3's cleaned expected responses)."""
    return Path(responses_root) / str(test_or_train_set) / "expected.jsonl"


def load_expected(path):
    """``{utt_id: record}`` of a stage-3 ``expected.jsonl``; a record lacking a field is an error naming the file.

    Each record also gets ``response`` (= the teacher's ``output``), so it can be scored like a system's.
    """
    path = Path(path)
    records = {}
    for k, rec in enumerate(read_jsonl(path), 1):
        lacking = [f for f in EXPECTED_FIELDS if f not in rec]
        if lacking:
            raise ValueError(f"{path}: record {k} lacks {lacking}; stage 3 writes {', '.join(EXPECTED_FIELDS)}")
        if rec["emotion"] not in EMOTIONS:
            raise ValueError(f"{path}: record {k} has emotion {rec['emotion']!r}, not one of {', '.join(EMOTIONS)}")
        if rec["utt_id"] in records:
            raise ValueError(f"{path}: utt_id {rec['utt_id']!r} occurs twice")
        records[rec["utt_id"]] = {**rec, "response": rec["output"]}
    return records


def _normalise(text):
    """Whitespace-collapsed, lower-cased response: the form responses are compared in."""
    return re.sub(r"\s+", " ", (text or "").strip()).lower()


class NotComputable(ValueError):
    """A figure that cannot be computed from these inputs; its message says why (reported as n/a, never fatal)."""


class ResponseEmotionClassifier:
    """TF-IDF + logistic regression from a response's text to the emotion it was written for."""

    def __init__(self, ngram_max=2, min_df=1, sublinear_tf=True, analyzer="word", C=10.0, class_weight="balanced",
                 max_iter=2000, seed=0):
        if analyzer not in ("word", "char_wb"):
            raise ValueError(f"response classifier analyzer must be 'word' or 'char_wb', got {analyzer!r}")
        self.options = {"ngram_max": int(ngram_max), "min_df": min_df, "sublinear_tf": bool(sublinear_tf),
                        "analyzer": analyzer, "C": float(C), "class_weight": class_weight or None,
                        "max_iter": int(max_iter), "seed": int(seed)}
        self.pipeline = None

    def _new_pipeline(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        o = self.options
        low = 1 if o["analyzer"] == "word" else 2
        return make_pipeline(
            TfidfVectorizer(analyzer=o["analyzer"], ngram_range=(low, max(low, o["ngram_max"])), min_df=o["min_df"],
                            sublinear_tf=o["sublinear_tf"], lowercase=True),
            LogisticRegression(C=o["C"], class_weight=o["class_weight"], max_iter=o["max_iter"],
                               random_state=o["seed"]))

    def fit(self, texts, labels):
        """Train on ``texts``; ``NotComputable`` (saying why) when the texts hold one emotion or no words."""
        texts, labels = [_normalise(t) for t in texts], list(labels)
        if len(set(labels)) < 2:
            raise NotComputable(f"the response-emotion classifier needs at least two emotions to learn; got "
                                f"{sorted(set(labels))}")
        try:
            self.pipeline = self._new_pipeline().fit(texts, labels)
        except ValueError as err:
            # scikit-learn's "empty vocabulary": every text is empty or holds no token of the analyzer (e.g. a
            # random teacher that wrote nothing), or min_df removed every term
            if "empty vocabulary" not in str(err):
                raise
            n_empty = sum(not t for t in texts)
            raise NotComputable(f"the {len(texts)} training responses hold no words to learn from ({n_empty} empty; "
                                f"analyzer {self.options['analyzer']!r}, min_df {self.options['min_df']})") from None
        return self

    def predict(self, texts):
        """Emotion labels; an empty response is ``unknown`` (a wrong answer)."""
        if self.pipeline is None:
            raise RuntimeError("fit the classifier first")
        texts = [_normalise(t) for t in texts]
        out = [UNKNOWN] * len(texts)
        keep = [k for k, t in enumerate(texts) if t]
        if keep:
            for k, label in zip(keep, self.pipeline.predict([texts[k] for k in keep])):
                out[k] = str(label)
        return out

    def cross_validate(self, texts, labels, groups, n_splits=5):
        """Out-of-fold UA with folds grouped by ``groups`` (the transcript): ``{ua, wa, per_fold_ua, ...}``.

        Fewer distinct groups than ``n_splits`` use as many folds as there are groups (at least 2);
        a single group gives ``None``.
        """
        from sklearn.model_selection import GroupKFold

        from rellm.data.ser_metrics import unweighted_accuracy

        texts, labels, groups = list(texts), list(labels), list(groups)
        n_groups = len(set(groups))
        if n_groups < 2:
            return None
        folds = min(int(n_splits), n_groups)
        preds = [None] * len(texts)
        per_fold = []
        for train_idx, held_idx in GroupKFold(n_splits=folds).split(texts, labels, groups):
            try:
                model = ResponseEmotionClassifier(**self.options).fit([texts[i] for i in train_idx],
                                                                      [labels[i] for i in train_idx])
            except NotComputable:
                continue  # one emotion or no words in this fold: its held-out utterances are counted in n_not_held_out
            fold_preds = model.predict([texts[i] for i in held_idx])
            for i, p in zip(held_idx, fold_preds):
                preds[i] = p
            per_fold.append(unweighted_accuracy([labels[i] for i in held_idx], fold_preds))
        scored = [k for k, p in enumerate(preds) if p is not None]
        if not scored:
            return None
        result = ser_metrics([labels[k] for k in scored], [preds[k] for k in scored])
        return {"ua": result["ua"], "wa": result["wa"], "per_class_recall": result["per_class_recall"],
                "per_fold_ua": per_fold, "n_splits": folds, "n_groups": n_groups, "grouped_by": "transcript",
                "n": len(scored), "n_not_held_out": len(texts) - len(scored)}


def classifier_from_config(hp):
    """The classifier with the ``response_classifier_*`` options of ``conf/score.yaml``."""
    return ResponseEmotionClassifier(**{k: hp[f"response_classifier_{k}"] for k in CLASSIFIER_KEYS})


def train_on_expected(classifier, train_records, cv_folds=5):
    """Fit on the teacher's training responses; returns the classifier's summary (with the grouped CV UA)."""
    ids = sorted(train_records)
    texts = [train_records[i]["response"] for i in ids]
    labels = [train_records[i]["emotion"] for i in ids]
    groups = [_normalise(train_records[i]["transcript"]) for i in ids]
    cv = classifier.cross_validate(texts, labels, groups, n_splits=cv_folds) if cv_folds and cv_folds > 1 else None
    classifier.fit(texts, labels)
    counts = Counter(labels)
    return {"n_train": len(ids), "train_emotions": {e: counts[e] for e in EMOTIONS if counts[e]},
            "n_train_sentences": len(set(groups)), "options": dict(classifier.options), "cv": cv}


def predict_records(records, classifier):
    """Add ``response_emotion_pred`` to every record (the classifier's reading of its response)."""
    ids = sorted(records)
    for utt, pred in zip(ids, classifier.predict([records[i]["response"] for i in ids])):
        records[utt]["response_emotion_pred"] = pred


def has_predictions(records):
    return bool(records) and all("response_emotion_pred" in r for r in records.values())


def response_emotion_metrics(records):
    """UA / WA / per-class recall / confusion of the classifier's readings against the reference emotions."""
    ids = sorted(records)
    return ser_metrics([records[i]["emotion"] for i in ids], [records[i]["response_emotion_pred"] for i in ids])


def distinct_responses(records):
    """How often a response is repeated across the test utterances (compared whitespace- and case-normalised).

    - ``share_identical``: share of utterances whose response is identical to another utterance's response;
    - ``share_identical_other_sentence``: ... identical to the response given to another *sentence*
      (a corpus that says each sentence in several voices lets a voice-independent system repeat itself
      within a sentence; across sentences a repeat is a generic reply);
    - ``most_common_share`` / ``most_common``: the single most frequent response and its share (the RESULTS
      table's "same response" column: no system should give one response to more than 10 % of the test set).
    """
    ids = sorted(records)
    n = len(ids)
    if n == 0:
        return None
    texts = [_normalise(records[i].get("response")) for i in ids]
    sentences = [_normalise(records[i].get("transcript")) for i in ids]
    counts = Counter(texts)
    sentences_of = {}
    for text, sentence in zip(texts, sentences):
        sentences_of.setdefault(text, set()).add(sentence)
    repeated = sum(counts[t] > 1 for t in texts)
    across = sum(len(sentences_of[t]) > 1 for t in texts)
    top, top_count = counts.most_common(1)[0]
    example = next(records[i].get("response") for i, t in zip(ids, texts) if t == top)
    return {"n": n, "n_distinct": len(counts), "n_identical": int(repeated), "share_identical": repeated / n,
            "n_identical_other_sentence": int(across), "share_identical_other_sentence": across / n,
            "most_common_count": int(top_count), "most_common_share": top_count / n, "most_common": example}


def pick_example_sentences(record_sets, count=2):
    """The first ``count`` transcripts (sorted) that have an utterance in every emotion, in the union of
    ``record_sets`` (dicts ``{utt_id: record}``); returns ``[(transcript, {emotion: utt_id})]``.

    Per emotion the utterance with the smallest utt_id is taken, so the choice is deterministic.
    """
    by_sentence = {}
    for records in record_sets:
        for utt, rec in records.items():
            slot = by_sentence.setdefault(rec["transcript"], {}).setdefault(rec["emotion"], utt)
            if utt < slot:
                by_sentence[rec["transcript"]][rec["emotion"]] = utt
    complete = [s for s in sorted(by_sentence) if all(e in by_sentence[s] for e in EMOTIONS)]
    return [(s, {e: by_sentence[s][e] for e in EMOTIONS}) for s in complete[:count]]


def example_responses(outputs, teacher, count=2):
    """``[{transcript, rows: [{emotion, utt_id, responses: {system: text or None}}]}]`` for RESULTS.md.

    ``outputs`` maps systems to their records; ``teacher`` (or ``None``) holds the teacher's test
    expected responses, shown under the key ``"teacher"``.
    """
    sets = dict(outputs)
    if teacher:
        sets["teacher"] = teacher
    examples = []
    for transcript, utts in pick_example_sentences(list(sets.values()), count):
        rows = []
        for emotion, utt in utts.items():
            rows.append({"emotion": emotion, "utt_id": utt,
                         "responses": {name: (recs[utt]["response"] if utt in recs else None)
                                       for name, recs in sets.items()},
                         "predicted": {name: recs[utt].get("response_emotion_pred")
                                       for name, recs in sets.items() if utt in recs}})
        examples.append({"transcript": transcript, "rows": rows})
    return examples


def load_teacher(teacher_path):
    """``(records, None)`` of the teacher's expected responses for the test utterances, or ``(None, why)``."""
    teacher_path = Path(teacher_path)
    if not teacher_path.is_file():
        why = (f"{teacher_path} does not exist: the teacher's expected responses for the test utterances come from "
               "stage 3 run on the test set (./run.sh --stage 3 --stop_stage 3)")
        logger.warning("no teacher reference row: %s", why)
        return None, why
    teacher = load_expected(teacher_path)
    if not teacher:
        return None, f"{teacher_path} is empty"
    return teacher, None


def score_responses(outputs, train_path, teacher_path, classifier, cv_folds=5):
    """Train the classifier on ``train_path`` and read every system's responses with it.

    Adds ``response_emotion_pred`` to the records of ``outputs`` and returns ``(section, teacher)``:
    ``section`` is the ``response_emotion`` part of ``metrics.json`` (the classifier's summary and CV UA,
    the teacher's figures on the test utterances, or why either is missing), ``teacher`` the teacher's
    test records (``None`` when ``teacher_path`` does not exist), with their readings when there is a classifier.
    Without a classifier (no training responses, one emotion, no words in them) nothing is predicted and
    ``section["missing"]`` says why: the figure is n/a, the rest of stage 6 goes on.
    """
    train_path, teacher_path = Path(train_path), Path(teacher_path)
    section = {"train_path": str(train_path), "teacher_path": str(teacher_path), "classifier": None,
               "missing": None, "teacher": None, "teacher_missing": None}
    teacher, section["teacher_missing"] = load_teacher(teacher_path)
    if not train_path.is_file():
        section["missing"] = f"{train_path} does not exist (run stage 3 for the training set)"
    else:
        train = load_expected(train_path)
        emotions = {r["emotion"] for r in train.values()}
        if len(emotions) < 2:
            section["missing"] = (f"{train_path} holds {len(train)} responses in {len(emotions)} emotion(s); "
                                  "the classifier needs at least two")
        else:
            try:
                section["classifier"] = train_on_expected(classifier, train, cv_folds)
            except NotComputable as err:
                section["missing"] = f"{train_path}: {err}"
    if section["missing"]:
        logger.warning("no response-emotion figures: %s", section["missing"])
    else:
        cv = section["classifier"]["cv"]
        logger.info("response-emotion classifier: %d teacher responses of %d sentences%s",
                    section["classifier"]["n_train"], section["classifier"]["n_train_sentences"],
                    f"; {cv['n_splits']}-fold CV UA grouped by transcript {cv['ua']:.3f}" if cv else "")
        for records in list(outputs.values()) + ([teacher] if teacher else []):
            predict_records(records, classifier)
    if teacher:
        section["teacher"] = {"n": len(teacher),
                              "response_emotion": response_emotion_metrics(teacher) if has_predictions(teacher) else None,
                              "distinct_responses": distinct_responses(teacher),
                              **{metric.name: metric.section(teacher) for metric in registered_metrics()}}
    return section, teacher


__all__ = ["NotComputable", "ResponseEmotionClassifier", "classifier_from_config", "distinct_responses",
           "example_responses", "expected_path", "has_predictions", "load_expected", "load_teacher",
           "pick_example_sentences", "predict_records", "response_emotion_metrics", "score_responses",
           "train_on_expected"]
