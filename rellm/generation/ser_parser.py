"""Map a free-text SER answer to one of the five labels, or ``"unknown"``.

No parser ships with BLSP-Emo or RE-LLM (docs/evaluation.md#parsing-ser-answers); answers look like
"The emotion tone of the speech provided is neutral." but also "I think the speaker is not angry
but sad", "Happy!", "joyful", or an echo of the option list. The rules, in order:

1. An echoed option list ("neutral, sad, angry, happy, or surprise") is removed first: it names
   every label and says nothing.
2. Every mention of a label or a synonym ("joy", "excited" -> happy; "furious", "frustrated" ->
   angry; "surprised", "shocked" -> surprise; ...) is found at word boundaries.
3. A mention is negated when "not", "n't", "no", "never", "neither", "nor", "without" or "rather
   than" comes within the three preceding words, with no clause break (".", ";", ",  but") between.
   Negated mentions are discarded ("not angry", "neither sad nor angry").
4. If the remaining mentions name one label, that is the answer. If they name several, a mention
   introduced by a verdict cue ("is", "sounds", "seems", "feels", "answer:", "emotion:") wins;
   otherwise the earliest mention wins (answers put the verdict first).
5. Nothing left: ``"unknown"`` (scored as wrong, never silently dropped).
"""
import re

from rellm.data.emotions import EMOTIONS

UNKNOWN = "unknown"

SYNONYMS = {
    "neutral": ("neutral", "neutrality", "calm", "emotionless", "indifferent", "no particular emotion", "no emotion"),
    "happy": (
        "happy", "happiness", "happily", "joy", "joyful", "joyous", "excited", "excitement", "cheerful",
        "delighted", "glad", "pleased", "elated", "content", "enthusiastic", "positive",
    ),
    "angry": (
        "angry", "anger", "angrily", "mad", "furious", "fury", "rage", "annoyed", "annoyance", "irritated",
        "frustrated", "frustration", "hostile", "outraged",
    ),
    "sad": (
        "sad", "sadness", "sadly", "unhappy", "sorrow", "sorrowful", "depressed", "melancholy", "gloomy",
        "disappointed", "disappointment", "grief", "heartbroken", "down",
    ),
    "surprise": (
        "surprise", "surprised", "surprising", "astonished", "astonishment", "amazed", "amazement", "shocked",
        "startled", "stunned",
    ),
}
# "down" and "content" are too common as non-emotion words to count unless they stand alone as the
# whole answer or follow a verdict cue; they are handled by WEAK_WORDS below.
WEAK_WORDS = {"down", "content", "positive", "calm", "mad"}

_NEGATORS = r"(?:not|n't|no|never|neither|nor|without|hardly|rather\s+than|instead\s+of)"
_CUES = r"(?:is|are|was|sounds?|seems?|feels?|appears?|conveys?|expresses?|answer\s*:|emotion\s*:|tone\s*:|label\s*:)"
_OPTION_LIST = re.compile(
    r"neutral\s*,\s*sad\s*,\s*angry\s*,\s*happy\s*,?\s*(?:or|and)?\s*surprise",
    re.IGNORECASE,
)
_WORD_TO_LABEL = {w: label for label, words in SYNONYMS.items() for w in words}
# Longest phrases first so "no emotion" is matched before "no".
_MENTION = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_WORD_TO_LABEL, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"[.;!?]|\bbut\b|\bhowever\b|,", re.IGNORECASE)
_NEGATION = re.compile(r"\b" + _NEGATORS + r"\b|n't\b", re.IGNORECASE)
_CUE_BEFORE = re.compile(_CUES + r"\s+(?:a\s+|an\s+|the\s+|very\s+|quite\s+|rather\s+|mostly\s+|clearly\s+|mainly\s+)*$", re.IGNORECASE)


def _mentions(text):
    """(position, label, word, negated, cued) for every label word in ``text``."""
    found = []
    for m in _MENTION.finditer(text):
        word = m.group(1).lower()
        before = text[: m.start()]
        # The words since the last clause break, at most three, decide negation.
        last_break = max((b.end() for b in _CLAUSE_BREAK.finditer(before)), default=0)
        window = " ".join(before[last_break:].split()[-3:])
        negated = bool(_NEGATION.search(window)) and word not in ("no emotion", "no particular emotion")
        cued = bool(_CUE_BEFORE.search(before.rstrip() + " ")) or before.strip() == ""
        if word in WEAK_WORDS and not cued:
            continue
        found.append((m.start(), _WORD_TO_LABEL[word], word, negated, cued))
    return found


def parse_ser_answer(text):
    """The label an answer names (one of EMOTIONS) or ``"unknown"``."""
    if not text:
        return UNKNOWN
    text = _OPTION_LIST.sub(" ", text.replace("\u2019", "'"))
    mentions = [m for m in _mentions(text) if not m[3]]
    labels = {m[1] for m in mentions}
    if not labels:
        return UNKNOWN
    if len(labels) == 1:
        return labels.pop()
    cued = [m for m in mentions if m[4]]
    if cued and len({m[1] for m in cued}) == 1:
        return cued[0][1]
    return min(cued or mentions)[1]


assert set(SYNONYMS) == set(EMOTIONS), "SYNONYMS must cover exactly the canonical labels"
