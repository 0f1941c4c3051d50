"""A prosody baseline for emotion recognition: what simple pitch / energy / rate statistics achieve.

The mini corpus's styles are points in eSpeak's prosody space (rate, pitch, pitch range, volume) with
per-utterance jitter, so neighbouring styles overlap by design. How much is measured here, on the recipe's
own split: eight statistics per utterance (log-F0 mean, standard deviation and 10-90 % range over the
speech frames, from ``librosa.yin``; RMS mean, 95th percentile and relative standard deviation; the share
of speech frames; characters per second of the transcript) and a standardised logistic regression trained
on the train set. Its UA on valid and test is the figure a reader should hold the emotion encoder and the
speech-LLMs' SER against (RESULTS.md). Unlike the audeering-style encoder, which normalises every waveform,
these statistics see the loudness.
"""
import logging

import numpy as np

from rellm.data.emotions import EMOTIONS

logger = logging.getLogger(__name__)

FEATURES = ("logf0_mean", "logf0_sd", "logf0_range_10_90", "rms_mean", "rms_p95", "rms_rel_sd", "speech_ratio",
            "chars_per_second")
FRAME, HOP = 1024, 256


def prosody_features(wave, sample_rate, transcript):
    """The eight statistics of one utterance (``FEATURES`` order)."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32)
    if len(wave) < FRAME:
        wave = np.pad(wave, (0, FRAME - len(wave)))
    rms = librosa.feature.rms(y=wave, frame_length=FRAME, hop_length=HOP)[0]
    f0 = librosa.yin(wave, fmin=60, fmax=400, sr=sample_rate, frame_length=FRAME, hop_length=HOP)
    n = min(len(rms), len(f0))
    rms, f0 = rms[:n], f0[:n]
    speech = rms > 0.1 * rms.max() if rms.max() > 0 else np.ones(n, dtype=bool)
    logf0 = np.log(f0[speech])
    duration = len(wave) / sample_rate
    return [float(logf0.mean()), float(logf0.std()), float(np.percentile(logf0, 90) - np.percentile(logf0, 10)),
            float(rms.mean()), float(np.percentile(rms, 95)), float(rms.std() / max(rms.mean(), 1e-8)),
            float(speech.mean()), len(transcript or "") / max(duration, 1e-3)]


def features_of(entries, sample_rate=16000):
    """``(X [n, 8], labels, ids)`` of a manifest (``{data_root}`` resolved); unreadable audio is skipped, logged."""
    from rellm.data.audio import AudioError, load_audio

    rows, labels, ids = [], [], []
    for utt_id in sorted(entries):
        entry = entries[utt_id]
        if entry.get("emotion") not in EMOTIONS:
            continue
        try:
            wave = load_audio(entry["wav"], sample_rate)
        except AudioError as err:
            logger.warning("prosody baseline: skipping %s (%s)", utt_id, err)
            continue
        rows.append(prosody_features(wave, sample_rate, entry.get("transcript")))
        labels.append(entry["emotion"])
        ids.append(utt_id)
    return np.asarray(rows, dtype=np.float64), labels, ids


def prosody_baseline(train_entries, eval_sets, seed=0):
    """Fit on ``train_entries``; ``{"features": FEATURES, "n_train", "<set>": {"ua", "n"}}`` for each of ``eval_sets``
    (``{name: entries}``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rellm.data.ser_metrics import unweighted_accuracy

    X, y, _ = features_of(train_entries)
    if len(set(y)) < 2:
        raise ValueError(f"the prosody baseline needs at least two emotions in the train set, got {set(y)}")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed)).fit(X, y)
    result = {"features": list(FEATURES), "model": "standardised logistic regression", "n_train": len(y)}
    for name, entries in eval_sets.items():
        Xe, ye, _ = features_of(entries)
        result[name] = {"ua": unweighted_accuracy(ye, list(model.predict(Xe))) if ye else None, "n": len(ye)}
    return result
