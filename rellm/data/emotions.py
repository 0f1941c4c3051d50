"""The one emotion taxonomy used everywhere (BLSP-Emo / RE-LLM five classes).

The index order is the BLSP-Emo ``emotion2idx`` order, so heads trained here and
heads loaded from BLSP-Emo checkpoints agree.
"""
EMOTIONS = ("neutral", "happy", "angry", "sad", "surprise")
EMOTION_TO_ID = {e: i for i, e in enumerate(EMOTIONS)}
NUM_EMOTIONS = len(EMOTIONS)

# The dimensional attributes in the toolkit's one order: manifests, feature caches, heads and reports all use it.
AVD = ("arousal", "valence", "dominance")
