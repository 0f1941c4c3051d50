"""Does the response refer to what was said? The share of the transcript's content words a response repeats.

Our addition, not the paper's metric, beside the response-emotion UA (``rellm.scoring.response_emotion``):
that one asks whether a response follows the heard *emotion*, this one whether it follows the heard *words*.
The paper's systems answer what was said (BLSP-Emo's first training step aligns the speech with its
transcript so that the LLM reads it), and an empathetic reply to "Can you set a timer for twenty
minutes?" usually names the timer. A speech-LLM that hears the emotion but not the words can only give one
reply per emotion, whatever was said; the "same response" column shows the consequence, this shows the cause.

How: the transcript's *content words* are its lower-cased words of at least three characters that are not
in a fixed list of English function words (``FUNCTION_WORDS``, so the figure needs no tagger and never
changes with a library version). A response's *word recall* is the share of them that occur among the
response's words (whole words, case ignored). A system's figure is the mean over the test utterances
whose transcript has a content word. Its chance level, what a response that ignores the words gets, is
the same recall measured against the *other* test sentences' content words (``recall_other_sentences``:
per utterance the mean over every other distinct transcript, then the mean over utterances).

Exact repetition is what is counted, so a reply that paraphrases ("a 20-minute timer") scores lower than
one that repeats; the figure compares systems on the same test set, it is not a measure of understanding.
"""
import math
import re

import numpy as np

from rellm.scoring.metric_registry import Metric

# English function words (articles, pronouns, auxiliaries, prepositions, conjunctions, common adverbs and
# question words) of three or more letters; shorter words are never content words.
_FUNCTION_WORDS_TEXT = """
about above after again against all also and any are aren't because been before being below between both but
can can't cannot could couldn't did didn't does doesn't doing don't down during each few for from further had
hadn't has hasn't have haven't having he'd he'll he's her here here's hers herself him himself his how how's
i'd i'll i'm i've into isn't it's its itself just let's more most mustn't myself nor not now off once only
other ought our ours ourselves out over own please same she she'd she'll she's should shouldn't some such
than that that's the their theirs them themselves then there there's these they they'd they'll they're
they've this those through too under until very was wasn't we'd we'll we're we've were weren't what what's
when when's where where's which while who who's whom why why's will with won't would wouldn't you you'd
you'll you're you've your yours yourself yourselves
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text):
    """The set of lower-cased words of ``text`` (letters and digits, with an inner apostrophe: "don't")."""
    return set(_WORD.findall((text or "").lower().replace("\u2019", "'")))


def content_words(text):
    """Words of at least three characters that are not function words."""
    return {w for w in words(text) if len(w) >= 3 and w not in FUNCTION_WORDS}


def word_recall(transcript, response):
    """Share of the transcript's content words that occur in the response; ``None`` without content words."""
    wanted = content_words(transcript)
    if not wanted:
        return None
    return len(wanted & words(response)) / len(wanted)


def per_utterance_recall(records):
    """``{utt_id: recall or None}`` of every record (``transcript`` and ``response`` fields)."""
    return {u: word_recall(r.get("transcript"), r.get("response")) for u, r in records.items()}


def response_words_metrics(records):
    """``{n, n_scored, recall, recall_other_sentences}`` of one system's records (``None`` without records).

    ``n_scored``: utterances whose transcript has a content word (the others have no figure and are counted,
    not averaged in).
    """
    if not records:
        return None
    sentences = {}
    for rec in records.values():
        text = " ".join((rec.get("transcript") or "").split())
        wanted = content_words(text)
        if wanted:
            sentences.setdefault(text.lower(), wanted)
    own, other = [], []
    for rec in records.values():
        transcript = " ".join((rec.get("transcript") or "").split())
        recall = word_recall(transcript, rec.get("response"))
        if recall is None:
            continue
        own.append(recall)
        said = words(rec.get("response"))
        others = [len(w & said) / len(w) for key, w in sentences.items() if key != transcript.lower()]
        if others:
            other.append(float(np.mean(others)))
    return {"n": len(records), "n_scored": len(own), "recall": float(np.mean(own)) if own else None,
            "recall_other_sentences": float(np.mean(other)) if other else None}


def record_recall(record):
    """The word recall of one stage-5 record (``transcript``, ``response``)."""
    return word_recall(record.get("transcript"), record.get("response"))


def paired_recall(reference, baseline, common):
    """Per-utterance recall of two systems over ``common`` utterances where both have a figure: ``(a, b)``."""
    return METRIC.paired(reference, baseline, common)


def _percent(value):
    return "n/a" if math.isnan(value) else f"{value * 100:.1f}"


def table_cell(section):
    """``38.3 (1.5)``: the share of the transcript's content words the responses repeat, and in brackets the
    same against the other test sentences' words (what ignoring the words gets)."""
    if not section or section.get("recall") is None:
        return "–"
    other = section.get("recall_other_sentences")
    return _percent(section["recall"]) + (f" ({_percent(other)})" if other is not None else "")


def heard_coverage(transcripts, heard_transcripts):
    """``(heard, total)``: how many of the distinct content words of ``transcripts`` occur in ``heard_transcripts``
    (e.g. the test sentences' words against every transcript the model was trained on). A speech-LLM cannot
    learn to read a word from the training speech if it never heard it, unless its first training step read
    enough speech to generalise (BLSP-Emo: thousands of hours)."""
    wanted = set().union(*(content_words(t) for t in transcripts))
    heard = set().union(*(content_words(t) for t in heard_transcripts))
    return len(wanted & heard), len(wanted)


def read_transcripts(path):
    """Transcripts of a stage-1 manifest (``{utt_id: {"transcript": ...}}``, ``.json``) or of JSON lines."""
    from rellm.data.manifest import read_manifest
    from rellm.utils.io import read_jsonl

    rows = read_manifest(path).values() if str(path).endswith(".json") else read_jsonl(path)
    return [row.get("transcript") or "" for row in rows]


def main(argv=None):
    """``python -m rellm.scoring.response_words FILE.jsonl ... [--heard MANIFEST ...]``: the figures of stage-5
    ``responses.jsonl`` files (or stage-3 ``expected.jsonl``, whose ``output`` is the response), one line per
    file; with ``--heard``, also how many of the file's content words occur in those (training) transcripts."""
    import argparse

    from rellm.utils.io import read_jsonl

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("files", nargs="+", help="JSON lines with transcript and response (or output) fields")
    parser.add_argument("--heard", nargs="+", default=[], metavar="MANIFEST",
                        help="stage-1 manifests (.json) or JSON lines whose transcripts the model was trained on")
    args = parser.parse_args(argv)
    heard = [t for path in args.heard for t in read_transcripts(path)]
    for path in args.files:
        records = {}
        for k, rec in enumerate(read_jsonl(path)):
            records[rec.get("utt_id", k)] = {**rec, "response": rec.get("response", rec.get("output"))}
        m = response_words_metrics(records)
        if m is None or m["recall"] is None:
            print(f"{path}: no utterance with a content word in its transcript")
            continue
        other = m["recall_other_sentences"]
        chance = f"{other * 100:.1f} %" if other is not None else "no other sentence"
        line = (f"{path}: {m['n_scored']} of {m['n']} utterances; response words {m['recall'] * 100:.1f} % "
                f"(other sentences' words: {chance})")
        if args.heard:
            n_heard, total = heard_coverage([r.get("transcript") or "" for r in records.values()], heard)
            line += f"; content words heard in training: {n_heard} of {total} ({n_heard / total * 100:.0f} %)"
        print(line)
    return 0


METRIC = Metric(
    name="response_words", what="response words", column="resp. words (%)", short="resp. words",
    per_utterance=record_recall, utterance_key="word_recall", summarise=response_words_metrics, headline="recall",
    scale=100, digits=1, cell=table_cell, unit=" of the transcript's content words",
    not_available="no transcript has a content word (three letters or more, not a function word)",
    # scores made with another word list are not reused
    settings={"function_words": sorted(FUNCTION_WORDS)},
    describe=(
        "response words (our addition, `rellm.scoring.response_words`): \"resp. words\" is the share of the "
        "transcript's content words (lower-cased words of three or more characters, a fixed list of English "
        "function words removed) that occur in the response, averaged over the test utterances; in brackets the "
        "same share of the *other* test sentences' content words, what a response that ignores the words gets. "
        "Response emotion asks whether the reply follows the heard emotion, this whether it follows the heard words "
        "(BLSP-Emo's first training step aligns the speech with its transcript so that the LLM reads it); a "
        "speech-LLM that hears the emotion but not the words can give only one reply per emotion, which the same "
        "response column then shows. Exact words are counted, so a paraphrase scores lower. Compared like the "
        "EPITOME levels (Wilcoxon marks, bootstrap CIs below the table)"),
)

__all__ = ["FUNCTION_WORDS", "METRIC", "content_words", "heard_coverage", "paired_recall", "per_utterance_recall",
           "read_transcripts", "record_recall", "response_words_metrics", "table_cell", "word_recall", "words"]


if __name__ == "__main__":
    raise SystemExit(main())
