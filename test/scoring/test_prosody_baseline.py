"""The prosody baseline: its statistics measure what they name, and it separates styles that differ in them."""
import numpy as np
import pytest
import soundfile as sf

from rellm.scoring.prosody_baseline import FEATURES, prosody_baseline, prosody_features

SR = 16000


def _voice(f0, seconds, amplitude, rng):
    """A buzzy vowel-like tone (harmonics of f0) with a little jitter and noise."""
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.01 * rng.standard_normal())
    wave = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6))
    return (amplitude * wave / 3 + 0.001 * rng.standard_normal(len(t))).astype(np.float32)


def test_features_measure_pitch_loudness_and_rate():
    rng = np.random.default_rng(0)
    low = dict(zip(FEATURES, prosody_features(_voice(110, 2.0, 0.1, rng), SR, "x" * 20)))
    high = dict(zip(FEATURES, prosody_features(_voice(220, 1.0, 0.4, rng), SR, "x" * 20)))
    assert np.exp(low["logf0_mean"]) == pytest.approx(110, rel=0.05)
    assert np.exp(high["logf0_mean"]) == pytest.approx(220, rel=0.05)
    assert high["rms_mean"] > 3 * low["rms_mean"]
    assert high["chars_per_second"] == pytest.approx(20.0) and low["chars_per_second"] == pytest.approx(10.0)


def _corpus(folder, n, rng, offset=0):
    styles = {"sad": (110, 2.0, 0.1), "happy": (220, 1.2, 0.3), "angry": (130, 1.0, 0.5)}
    entries = {}
    for i in range(n):
        for emotion, (f0, seconds, amp) in styles.items():
            utt = f"{emotion}{offset + i}"
            sf.write(folder / f"{utt}.wav", _voice(f0 * rng.uniform(0.93, 1.07), seconds, amp, rng), SR)
            entries[utt] = {"wav": str(folder / f"{utt}.wav"), "emotion": emotion, "transcript": "say it " * 3}
    return entries


def test_separable_styles_are_recognised_and_random_labels_are_not(tmp_path):
    rng = np.random.default_rng(1)
    train, test = _corpus(tmp_path, 8, rng), _corpus(tmp_path, 4, rng, offset=100)
    result = prosody_baseline(train, {"test": test})
    assert result["test"] == {"ua": 1.0, "n": 12} and result["n_train"] == 24
    shuffled = dict(zip(train, rng.permutation([e["emotion"] for e in train.values()])))
    noisy = {u: {**e, "emotion": shuffled[u]} for u, e in train.items()}
    assert prosody_baseline(noisy, {"test": test})["test"]["ua"] < 0.8
