"""Audio given to the responder: a file or an array, checked and turned into mono float32 at 16 kHz.

What is refused, with one line saying what to do (:class:`AudioInputError`): a missing path, a folder, a
file that is not audio, anything over 30 s (Whisper's window, the longest utterance a model is trained
on) or under 0.1 s, NaN or infinite samples, an array without its sample rate. What is converted, with a
note in the reply: several channels (averaged, as stage 2 does), another sample rate (resampled as stage
2 does: ``rellm.data.audio.to_mono_at_rate``), integer samples (scaled to [-1, 1]).
"""
from pathlib import Path

import numpy as np

from rellm.data.audio import SAMPLE_RATE, to_mono_at_rate

MAX_SECONDS = 30.0
MIN_SECONDS = 0.1
AUDIO_SUFFIXES = ("wav", "flac", "ogg")


class AudioInputError(ValueError):
    """Audio the responder cannot take; the message (one line) says what to do."""


def load_checked_audio(path, max_seconds=MAX_SECONDS):
    """``(mono float32 waveform at 16 kHz, notes)`` of an audio file; raises :class:`AudioInputError`."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"{path}: no such file")
    if path.is_dir():
        raise AudioInputError(f"{path} is a folder; give one audio file ({', '.join(AUDIO_SUFFIXES)})")
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile's message names the problem (format, truncation)
        raise AudioInputError(f"{path}: cannot read it as audio ({str(err).strip()}); use a wav, flac or ogg "
                              "file") from err
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > max_seconds:
        raise AudioInputError(
            f"{path} is {seconds:.1f} s long; the limit is {max_seconds:.0f} s (Whisper's window). "
            f"Cut it first, e.g. `sox {path.name} short.wav trim 0 {max_seconds:.0f}`"
        )
    try:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioInputError(f"{path}: cannot decode the audio ({str(err).strip()})") from err
    return _checked(audio, sr, str(path), max_seconds, [])


def checked_array(samples, sample_rate, max_seconds=MAX_SECONDS):
    """``(mono float32 waveform at 16 kHz, notes)`` of a 1-D numpy array or torch tensor (``[samples]``; a 2-D
    ``[samples, channels]`` or ``[channels, samples]`` array is downmixed); raises :class:`AudioInputError`."""
    if sample_rate is None:
        raise AudioInputError("an array needs its sample rate: respond(samples, sample_rate=16000)")
    sample_rate = int(sample_rate)
    if sample_rate <= 0:
        raise AudioInputError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if hasattr(samples, "detach"):  # a torch tensor
        samples = samples.detach().cpu().numpy()
    audio = np.asarray(samples)
    notes = []
    if audio.ndim == 1:
        audio = audio[:, None]
    elif audio.ndim == 2:
        # the shorter axis is the channels (a few), the longer one time
        if audio.shape[0] < audio.shape[1]:
            audio = audio.T
    else:
        raise AudioInputError(f"expected a 1-D array of samples, got shape {tuple(audio.shape)}")
    if np.issubdtype(audio.dtype, np.integer):
        info = np.iinfo(audio.dtype)
        notes.append(f"{audio.dtype} samples scaled to [-1, 1]")
        if info.min == 0:  # unsigned (8-bit wav): centred on the middle value
            audio = (audio.astype(np.float64) - (info.max + 1) / 2) / ((info.max + 1) / 2)
        else:
            audio = audio.astype(np.float64) / -float(info.min)
    elif not np.issubdtype(audio.dtype, np.floating):
        raise AudioInputError(f"expected float or integer samples, got dtype {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.shape[0] > max_seconds * sample_rate:
        raise AudioInputError(f"the array holds {audio.shape[0] / sample_rate:.1f} s of audio; the limit is "
                              f"{max_seconds:.0f} s (Whisper's window): cut it first")
    return _checked(audio, sample_rate, "the array", max_seconds, notes)


def _checked(audio, sr, name, max_seconds, notes):
    """Shared checks of a ``[samples, channels]`` float32 array: length, finiteness, then downmix and resampling."""
    if audio.shape[0] < MIN_SECONDS * sr:
        raise AudioInputError(f"{name} holds {audio.shape[0] / sr:.3f} s of audio; give at least {MIN_SECONDS} s "
                              "of speech")
    if not np.isfinite(audio).all():
        raise AudioInputError(f"{name} contains NaN or infinite samples")
    if audio.shape[1] > 1:
        notes.append(f"{audio.shape[1]} channels downmixed to mono")
    if sr != SAMPLE_RATE:
        notes.append(f"resampled from {sr} Hz to {SAMPLE_RATE} Hz")
    return to_mono_at_rate(audio, sr, SAMPLE_RATE), notes


def checked_input(audio, sample_rate=None, max_seconds=MAX_SECONDS):
    """A path (str or Path) or an array with its ``sample_rate`` -> ``(mono float32 at 16 kHz, notes)``."""
    if isinstance(audio, (str, Path)):
        wave, notes = load_checked_audio(audio, max_seconds)
        if sample_rate is not None:
            import soundfile as sf

            file_rate = sf.info(str(audio)).samplerate
            if int(sample_rate) != file_rate:
                raise AudioInputError(f"{audio} is at {file_rate} Hz but sample_rate={sample_rate} was given; leave "
                                      "sample_rate out for a file")
        return wave, notes
    return checked_array(audio, sample_rate, max_seconds)
