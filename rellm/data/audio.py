"""Audio loading for the frozen encoders: mono float32 at 16 kHz.

Both Whisper and the wav2vec2 emotion encoder expect 16 kHz mono input
(docs/method.md#audio-front-end). Multi-channel files are down-mixed by averaging; other rates
are resampled with torchaudio's band-limited sinc resampler.
"""
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


class AudioError(RuntimeError):
    """An utterance's audio cannot be used; ``reason`` is the report key (missing / unreadable / empty)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def load_audio(path, sample_rate=SAMPLE_RATE):
    """``path`` -> 1-D float32 numpy array in [-1, 1] at ``sample_rate``; raises :class:`AudioError`."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError("missing_audio", f"{path} does not exist")
    if path.stat().st_size == 0:  # what stage 1 calls it too
        raise AudioError("empty_audio", f"{path} is an empty file (0 bytes)")
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError("unreadable_audio", f"{path}: {err}") from err
    if audio.size == 0:
        raise AudioError("empty_audio", f"{path} has no samples")
    return to_mono_at_rate(audio, sr, sample_rate)


def to_mono_at_rate(audio, sr, sample_rate=SAMPLE_RATE):
    """``[samples, channels]`` float32 at ``sr`` -> 1-D float32 at ``sample_rate``: channels averaged, other rates
    resampled (band-limited sinc). Stage 2 and the responder (``rellm.responder_audio``) both go through it."""
    audio = audio.mean(axis=1) if audio.shape[1] > 1 else audio[:, 0]
    if sr != sample_rate:
        import torch
        import torchaudio.functional as AF

        audio = AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), sr, sample_rate).numpy()
    return np.ascontiguousarray(audio, dtype=np.float32)
