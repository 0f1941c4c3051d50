"""What the imported checkpoints were trained on, and whether a scored system's training data overlap its test set.

A system scored on utterances its checkpoint (or the checkpoint it was initialised from) was trained on is not
compared fairly, and the table does not show it. Stage 6 (``rellm.bin.score``) follows each system's experiment
folder to the checkpoints it holds (docs/datasets.md#training-data-of-the-imported-checkpoints):

- ``final/model.json`` with ``imported_from`` written by ``rellm.pretrained.blsp_emo`` (or the import's done marker
  ``.done.import_blsp_emo``): the released BLSP-Emo;
- ``final/model.json``'s ``base_models.emotion_encoder``: the frozen dimensional emotion encoder of RE-LLM;
- ``hyperparams.yaml``'s ``init_from`` (RE-LLM continues the imported BLSP-Emo): that experiment, followed in turn.

The test set's parts are read from its utterance ids (IEMOCAP session, ESD speaker and official subset) or its name
(MSP-Podcast Test1/Test2). Each part is looked up in ``CHECKPOINTS``: ``trained`` (the sources say the checkpoint
was trained on it), ``held out`` (the sources say it was not), ``unknown`` (the corpus is in the checkpoint's
training data but the sources do not say which part). A corpus not in a checkpoint's ``corpora`` was not used by
it. Every entry names its source; nothing here is inferred from results.

Models trained by the recipe itself (BLSP-Emo with ``blsp_emo_source=trained``, RE-LLM's own step 2, the stage-2a
emotion encoder) see only the recipe's train split and are not listed. The general-purpose pretrained models
(Whisper, Qwen-7B-Chat) are not checked: their training data are not documented corpus by corpus.
"""
import json
import re
from pathlib import Path

from rellm.utils.config import config_value
from rellm.utils.experiment_dir import ExperimentDir

TRAINED, HELD_OUT, UNKNOWN = "trained", "held out", "unknown"

SOURCES = {
    "blsp_emo_paper": ("Wang et al. 2024, BLSP-Emo: Towards Empathetic Large Speech-Language Models (arXiv 2406.03872 "
                       "v1), Sect. 3.1 and Appendix B (Table 6): emotion alignment on IEMOCAP, MELD, CMU-MOSEI, MEAD "
                       "and ESD (English and Chinese) mapped to five emotions; in-domain SER test sets IEMOCAP Session 5 "
                       "and the MELD test set"),
    "blsp_emo_code": ("github.com/cwang621/blsp-emo: the emotion-alignment example examples/train/train_iemocap.jsonl "
                      "is Ses01F_impro01_M011 (Session 1); the SER example examples/test/test_iemocap.jsonl is "
                      "Ses05F_impro01_F008 (Session 5)"),
    "audeering_card": ("huggingface.co/audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim (model card) and Wagner "
                       "et al. 2023, Dawn of the transformer era in speech emotion recognition (arXiv 2203.07378): "
                       "wav2vec 2.0 Large-Robust fine-tuned on MSP-Podcast release 1.7 for arousal, dominance and "
                       "valence; IEMOCAP and MOSI only as cross-corpus test sets"),
}

SHORT_SOURCES = {"blsp_emo_paper": "the BLSP-Emo paper, arXiv 2406.03872 Sect. 3.1 and App. B",
                 "blsp_emo_code": "the BLSP-Emo code's shipped examples",
                 "audeering_card": "the audeering model card and Wagner et al. 2023"}
CORPUS_NAMES = {"iemocap": "IEMOCAP", "esd": "ESD", "msp_podcast": "MSP-Podcast"}

CHECKPOINTS = {
    "blsp_emo_released": {
        "name": "the released BLSP-Emo checkpoint (cwang621/blsp-emo)",
        "trained_on": ("semantic alignment: LibriSpeech, Common Voice 13.0, GigaSpeech M (English), WenetSpeech "
                       "(Chinese); emotion alignment: IEMOCAP, MELD, CMU-MOSEI, MEAD, ESD (English and Chinese)"),
        "corpora": {
            "iemocap": {
                # Session 1: the shipped training example; Sessions 1-4: IEMOCAP is trained on and Session 5 is the
                # paper's in-domain test set; Session 5: that test set and the shipped SER example
                "Session1": (TRAINED, ("blsp_emo_code", "blsp_emo_paper")),
                "Session2": (TRAINED, ("blsp_emo_paper",)),
                "Session3": (TRAINED, ("blsp_emo_paper",)),
                "Session4": (TRAINED, ("blsp_emo_paper",)),
                "Session5": (HELD_OUT, ("blsp_emo_paper", "blsp_emo_code")),
            },
            # which ESD speakers and which part of the official split: not stated
            "esd": {"*": (UNKNOWN, ("blsp_emo_paper",))},
        },
    },
    "audeering_msp_dim": {
        "name": "the frozen emotion encoder audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim",
        "trained_on": "MSP-Podcast release 1.7 (fine-tuning); LibriLight, Common Voice, Switchboard, Fisher (pre-training)",
        "corpora": {
            # which partitions of release 1.7, and how they map to a later release's Test1/Test2: not stated
            "msp_podcast": {"*": (UNKNOWN, ("audeering_card",))},
        },
    },
}

# how a checkpoint is recognised in an experiment folder (see the module docstring)
BLSP_EMO_IMPORTER = "rellm.pretrained.blsp_emo"
IMPORT_MARKER = ".done.import_blsp_emo"
EMOTION_ENCODERS = {"wav2vec2-large-robust-12-ft-emotion-msp-dim": "audeering_msp_dim"}

CORPUS_PATTERNS = {  # utterance ids of the stage-1 preparers
    "iemocap": re.compile(r"^Ses0(?P<session>[1-5])[FM]_"),
    "esd": re.compile(r"^(?P<speaker>\d{4})_(?P<number>\d{6})$"),
    "msp_podcast": re.compile(r"^MSP-PODCAST_"),
}
MSP_PARTITIONS = {"test1": "Test1", "test2": "Test2", "valid": "Development", "train": "Train"}


def detect_corpus(utt_ids):
    """The corpus whose id pattern every utterance id matches, or None."""
    utt_ids = list(utt_ids)
    for corpus, pattern in CORPUS_PATTERNS.items():
        if utt_ids and all(pattern.match(u) for u in utt_ids):
            return corpus
    return None


def parts_of_test_set(corpus, utt_ids, test_set):
    """``{part: n utterances}`` of a test set: IEMOCAP ``Session<k>``, ESD ``<speaker>/<official subset>``, MSP-Podcast
    its partition (from the test set's name). Ids that do not match the corpus's pattern are counted as ``other``."""
    from collections import Counter

    parts = Counter()
    for utt in utt_ids:
        match = CORPUS_PATTERNS[corpus].match(utt) if corpus in CORPUS_PATTERNS else None
        if match is None:
            parts["other"] += 1
        elif corpus == "iemocap":
            parts[f"Session{match.group('session')}"] += 1
        elif corpus == "esd":
            from rellm.data.corpora.esd import official_set

            parts[f"{match.group('speaker')}/{official_set(int(match.group('number')))}"] += 1
        else:
            parts[MSP_PARTITIONS.get(str(test_set), str(test_set))] += 1
    return dict(sorted(parts.items()))


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _resolve(path, exp_root):
    """A recorded experiment path: as written (relative to the recipe folder), else under ``exp_root``'s parent."""
    path = Path(str(path))
    if path.is_absolute() or path.exists():
        return path
    alt = Path(exp_root).parent / path
    return alt if alt.exists() else path


def checkpoints_of(folder, exp_root=None, _seen=None):
    """``[(checkpoint key, how it got there)]`` of the experiment ``folder`` (see the module docstring)."""
    folder = Path(folder)
    seen = _seen if _seen is not None else set()
    key = str(folder.resolve()) if folder.exists() else str(folder)
    if key in seen:
        return []
    seen.add(key)
    exp = ExperimentDir(folder)
    meta = _read_json(exp.final_config) if exp.final_config.is_file() else {}
    found = []
    imported = meta.get("imported_from") or {}
    marker = folder / IMPORT_MARKER
    if imported.get("importer") == BLSP_EMO_IMPORTER or marker.is_file():
        source = imported.get("source") or _read_json(marker).get("imported_from", {}).get("source")
        found.append(("blsp_emo_released", f"{folder} imported it from {source or 'the released checkpoint'}"))
    encoder = str((meta.get("base_models") or {}).get("emotion_encoder") or "")
    for name, ckpt in EMOTION_ENCODERS.items():
        if encoder and Path(encoder.rstrip("/")).name == name:
            found.append((ckpt, f"{folder} uses it as its frozen emotion encoder ({encoder})"))
    init = config_value(exp.hyperparams, "init_from") if exp.hyperparams.is_file() else None
    if init:
        source = _resolve(init, exp_root or folder.parent)
        for ckpt, how in checkpoints_of(source, exp_root, seen):
            found.append((ckpt, f"{folder} is initialised from {init}; {how}"))
    return found


def verdict(checkpoint, corpus, parts):
    """``(status, parts concerned, source keys)`` of one checkpoint against a test set's parts: ``trained`` when any
    part was trained on, else ``unknown`` when any part's status is unknown, else ``None`` (no overlap)."""
    table = CHECKPOINTS[checkpoint]["corpora"].get(corpus)
    if table is None:
        return None, [], ()
    by_status = {}
    for part in parts:
        status, sources = table.get(part.split("/")[0], table.get(part, table.get("*", (UNKNOWN, ()))))
        entry = by_status.setdefault(status, ([], []))
        entry[0].append(part)
        entry[1].extend(s for s in sources if s not in entry[1])
    for status in (TRAINED, UNKNOWN):
        if status in by_status:
            return status, by_status[status][0], tuple(by_status[status][1])
    return None, [], ()


def _part_text(corpus, parts):
    if corpus == "esd":
        speakers = sorted({p.split("/")[0] for p in parts})
        subsets = sorted({p.split("/")[1] for p in parts if "/" in p})
        return f"ESD speakers {', '.join(speakers)} ({'/'.join(subsets)} subset)"
    if corpus == "iemocap":
        return "IEMOCAP " + ", ".join(p.replace("Session", "Session ") for p in parts)
    return f"{CORPUS_NAMES.get(corpus, corpus)} {', '.join(parts)}"


def systems_overlap(systems_dirs, corpus, parts, exp_root=None):
    """``(overlap, details)``: ``overlap`` = ``{system: reason}`` for the systems whose checkpoints were (or may have
    been: reason ``unknown: ...``) trained on the test set; ``details`` = ``{system: [{checkpoint, via, status,
    parts, sources}]}`` for every checkpoint found. ``systems_dirs``: ``{system: experiment folder}``."""
    overlap, details = {}, {}
    for system, folder in systems_dirs.items():
        reasons = {TRAINED: [], UNKNOWN: []}
        for ckpt, how in checkpoints_of(folder, exp_root):
            status, concerned, sources = verdict(ckpt, corpus, parts) if corpus else (None, [], ())
            details.setdefault(system, []).append({"checkpoint": ckpt, "name": CHECKPOINTS[ckpt]["name"], "via": how,
                                                   "status": status or "no overlap", "parts": concerned,
                                                   "sources": [SOURCES[s] for s in sources]})
            if status:
                what = "was trained on" if status == TRAINED else "may have been trained on"
                reasons[status].append(f"{CHECKPOINTS[ckpt]['name']} {what} {_part_text(corpus, concerned)} ({how}; "
                                       f"source: {'; '.join(SHORT_SOURCES[k] for k in sources)})")
        if reasons[TRAINED]:
            overlap[system] = "; ".join(reasons[TRAINED])
        elif reasons[UNKNOWN]:
            overlap[system] = "unknown: " + "; ".join(reasons[UNKNOWN]) + "; the sources do not say which parts"
    return overlap, details


def overlap_section(exp_dirs, corpus_hint, utt_ids, test_set, exp_root=None):
    """The ``metrics.json`` pieces: ``(test_overlap, training_data)`` for the scored systems' folders ``exp_dirs``
    and the test set's utterance ids. ``corpus_hint``: the recipe's corpus (``corpus`` in conf/score.yaml), else
    detected from the ids."""
    utt_ids = sorted(utt_ids)
    corpus = corpus_hint if corpus_hint in CORPUS_PATTERNS else detect_corpus(utt_ids)
    parts = parts_of_test_set(corpus, utt_ids, test_set) if corpus else {}
    overlap, details = systems_overlap(exp_dirs, corpus, parts, exp_root)
    return overlap, {"corpus": corpus, "test_parts": parts, "checkpoints": details,
                     "checked": sorted(CHECKPOINTS), "doc": "docs/datasets.md#training-data-of-the-imported-checkpoints"}
