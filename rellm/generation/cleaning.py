"""Dropping unusable teacher outputs (docs/method.md#cleaning), with the reason for every drop.

The five rules are BLSP-Emo's ``clean_noise_examples.py`` (refusals and "as an AI language model"
boilerplate); an empty output is dropped too (it would teach the student to say nothing). Cleaning
never edits an output: a record is kept verbatim or dropped and counted. ``tidy_reply`` (a recipe
option, off in the paper recipes) is the one edit, applied before cleaning and counted.
"""
import re

from rellm.utils.drop_report import MAX_EXAMPLES, DropReport

# (reason, test) in the order the original script applies them; the first match names the reason.
RULES = (
    ("refusal_cannot", lambda t: t.startswith("I'm sorry, but I cannot")),
    ("refusal_not_sure", lambda t: t.startswith("I'm sorry, but I'm not sure")),
    ("as_an_ai_language_model", lambda t: "as an ai language model" in t.lower()),
    ("sorry_but_i", lambda t: "i'm sorry, but i" in t.lower()),
    ("not_sure_what_you", lambda t: "I'm not sure what you" in t),  # case-sensitive, as in the original
)


def normalise_apostrophes(text):
    """Curly apostrophes (a tokenizer's choice, not the model's meaning) would dodge the rules."""
    return text.replace("\u2019", "'").replace("\u2018", "'")


def drop_reason(output, extra_substrings=()):
    """The reason ``output`` must be dropped, or None to keep it.

    ``extra_substrings``: a recipe's additional case-insensitive patterns (reason
    ``extra:<pattern>``), checked after the paper's rules; e.g. the mini recipe's small teacher
    writes "as a helpful AI, I'm not equipped to ..." refusals that the paper's rules miss.
    """
    if not output or not output.strip():
        return "empty"
    text = normalise_apostrophes(output.strip())
    for reason, rule in RULES:
        if rule(text):
            return reason
    lowered = text.lower()
    for pattern in extra_substrings:
        if normalise_apostrophes(pattern).lower() in lowered:
            return f"extra:{pattern}"
    return None


class CleaningReport(DropReport):
    """Kept/dropped counts by reason, the first few dropped records as examples (``rellm.utils.drop_report``)."""

    def __init__(self, max_examples=MAX_EXAMPLES, extra_substrings=()):
        super().__init__(max_examples)
        self.extra_substrings = tuple(extra_substrings or ())

    def filter(self, records):
        """Yield the records to keep; count the others."""
        for rec in records:
            reason = drop_reason(rec["output"], self.extra_substrings)
            if reason is None:
                self.keep()
                yield rec
                continue
            self.drop(reason, {"utt_id": rec["utt_id"], "output": rec["output"]})


_SENTENCE = re.compile(r".+?(?:[.!?][\"')\]]*(?=\s|$)|$)", re.DOTALL)


def split_sentences(text):
    """``text`` cut after each sentence end (., ! or ?, then a space or the end); the last piece may be unfinished."""
    return [m.group(0).strip() for m in _SENTENCE.finditer(text.strip()) if m.group(0).strip()]


def tidy_reply(output, early_stop):
    """``(output, early_stop, what changed)`` for a small teacher's reply (mini recipe's ``tidy_replies``).

    Sentences that repeat an earlier sentence verbatim (case-insensitive) are dropped (a 135M model
    loops: "I'm so sorry. I'm so sorry. ..."), and an unfinished last sentence is cut off; a reply that
    then ends on a complete sentence is a finished reply (early_stop false), so the student learns to stop
    there. ``what changed`` lists ``repeats_dropped`` / ``unfinished_cut``.
    """
    sentences = split_sentences(output)
    seen, kept, changed = set(), [], []
    for sentence in sentences:
        key = sentence.lower()
        if key in seen:
            continue
        seen.add(key)
        kept.append(sentence)
    if len(kept) < len(sentences):
        changed.append("repeats_dropped")
    if kept and len(kept) > 1 and not re.search(r"[.!?][\"')\]]*$", kept[-1]):
        kept.pop()
        changed.append("unfinished_cut")
    text = " ".join(kept)
    if re.search(r"[.!?][\"')\]]*$", text):
        early_stop = False
    return text, bool(early_stop), changed
