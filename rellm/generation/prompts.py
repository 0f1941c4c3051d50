"""Prompt strings, prompt templates and the ChatML stop tokens shared by stage 3 (teacher) and stage 5 (inference).

The constants are the exact strings of BLSP-Emo / RE-LLM (docs/method.md#prompts); recipes pick
them through config keys, so a recipe may swap in another template (the mini recipe's small
teacher cannot follow the paper's wording, see docs/pretrained_models.md#small-teacher-prompts) without code changes.

Templates are ``str.format`` strings with two named fields:
``{emotion}`` (a word from the recipe's ``emotion_words`` map, by default the canonical label) and
``{transcript}``. A template without ``{transcript}`` gets the transcript appended, which is how the
paper's instructions work ("... in a coherent style: " + transcript).
"""
import string

from rellm.data.emotions import EMOTIONS

# ---- system prompts (docs/method.md#sequence-layout) -----------------------------------------------------------
SYSTEM_PLAIN = "You are a helpful assistant."
SYSTEM_EMPATHETIC = (
    "You are a helpful assistant. Your response should fulfill requests with empathy toward user's emotion tone."
)

# ---- instructions (docs/method.md#prompts) --------------------------------------------------------
# Stage 3 teacher, emotion-conditioned (RE-LLM's "expected response"); the label is the ground truth.
TEACHER_EMOTION_INSTRUCTION = "Continue the following sentence that reflects a '{emotion}' emotion tone in a coherent style: "
# Stage 3 teacher, plain continuation for training step 1 (the wording of the shipped example data).
CONTINUATION_INSTRUCTION = "Continue the following text in a coherent style: "
# Stage 4 student instruction (label-free: the model must hear the emotion).
STUDENT_EMOTION_INSTRUCTION = "Continue the following sentence based on the conveyed emotion tone in a coherent style: "
# Stage 5 SER question; the speech (or transcript) follows it directly.
SER_INSTRUCTION = (
    "Please identify the emotion tone of the speech provided below. "
    "Select from the following options: neutral, sad, angry, happy, or surprise.\n\nSpeech: "
)
# Stage 5 empathetic response: the speech itself is the user turn.
RESPONSE_INSTRUCTION = ""

# The small-model teacher template of the mini recipe, measured in docs/pretrained_models.md#small-teacher-prompts
# and re-measured for this module: SmolLM2-135M follows a first-person feeling statement, whereas it
# parrots or refuses the paper's "Continue the following sentence ..." wording.
MINI_TEACHER_EMOTION_TEMPLATE = "I feel {emotion}. {transcript}"
# Adjectives read better than the noun "surprise" in a first-person template.
EMOTION_ADJECTIVES = {"neutral": "neutral", "happy": "happy", "angry": "angry", "sad": "sad", "surprise": "surprised"}

CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


def template_fields(template):
    """The named fields of a ``str.format`` template (``{emotion}``, ``{transcript}``)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def check_template(template, allowed=("emotion", "transcript"), key="template"):
    """Reject a template with a misspelled field now rather than on the first utterance."""
    unknown = template_fields(template) - set(allowed)
    if unknown:
        raise ValueError(
            f"{key} {template!r} has unknown field(s) {sorted(unknown)}; allowed fields: "
            + ", ".join("{" + a + "}" for a in allowed)
        )
    return template


def render_user_turn(template, transcript, emotion=None, emotion_words=None):
    """The user turn for one utterance: ``template`` filled in, the transcript appended if not placed.

    ``emotion_words`` maps canonical labels to the word written into the prompt (default: the label
    itself, which is what the paper does: ``'surprise'``).
    """
    fields = template_fields(template)
    values = {"transcript": transcript}
    if "emotion" in fields:
        if emotion is None:
            raise ValueError(f"template {template!r} needs an emotion label but the utterance has none")
        if emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
        values["emotion"] = (emotion_words or {}).get(emotion, emotion)
    text = template.format(**values)
    return text if "transcript" in fields else text + transcript


def instruction_prefix(template, emotion=None, emotion_words=None):
    """The part of the user turn before the transcript (stored as ``instruction`` in stage 3 records).

    For the paper's templates this is the exact instruction string (docs/method.md#data-records). For a template
    that places ``{transcript}`` in the middle, the whole template with ``{transcript}`` kept literal.
    """
    fields = template_fields(template)
    values = {"transcript": "{transcript}"}
    if "emotion" in fields:
        values["emotion"] = (emotion_words or {}).get(emotion, emotion)
    text = template.format(**values)
    if text.endswith("{transcript}") and text.count("{transcript}") == 1:
        return text[: -len("{transcript}")]
    return text


def stop_token_ids(tokenizer, extra=()):
    """Token ids that end a ChatML reply: ``<|im_end|>``, ``<|im_start|>`` and the tokenizer's eos.

    Stopping on ``<|im_start|>`` too mirrors the original generation scripts (a small model sometimes
    skips ``<|im_end|>`` and opens a new turn).
    """
    ids = set()
    vocab = tokenizer.get_vocab()
    for tok in (CHATML_END, CHATML_START, *extra):
        if tok in vocab:
            ids.add(vocab[tok])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the tokenizer has neither ChatML tokens nor an eos token; cannot tell when a reply ends")
    return sorted(ids)
