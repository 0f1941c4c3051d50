"""The one emotion taxonomy used everywhere (BLSP-Emo / RE-LLM five classes).

The index order is the BLSP-Emo ``emotion2idx`` order, so heads trained here and
heads loaded from BLSP-Emo checkpoints agree.
"""
EMOTIONS = ("neutral", "happy", "angry", "sad", "surprise")
EMOTION_TO_ID = {e: i for i, e in enumerate(EMOTIONS)}
NUM_EMOTIONS = len(EMOTIONS)


def emotion_id(label):
    """Index of a canonical label; an unknown label is an error naming the valid ones."""
    try:
        return EMOTION_TO_ID[label]
    except KeyError:
        raise ValueError(f"unknown emotion {label!r}; expected one of {', '.join(EMOTIONS)}") from None
