"""The synthetic mini corpus: layout, labels, sentence-disjoint splits, determinism,
idempotency, and that the emotion styles are recoverable from the audio."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rellm.testing.prerequisites import require_module

require_module("espeakng_loader")

from rellm.data.corpora import mini
from rellm.data.emotions import EMOTIONS
from rellm.utils.stage import OptionsChangedError

SETS = ("train", "valid", "test")
SMALL = {"num_sentences": 24, "valid_sentences": 6, "test_sentences": 4}


def load_sets(save_folder):
    return {s: json.loads((Path(save_folder) / f"{s}.json").read_text()) for s in SETS}


def wav_path(entry, save_folder):
    root = (Path(save_folder) / "data_root.txt").read_text().strip()
    return Path(entry["wav"].replace("{data_root}", root))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("mini")
    save = base / "egs" / "mini" / "data" / "official"
    report = mini.prepare_mini("", save, seed=7, **SMALL)
    return save, report


def test_layout_counts_and_fields(corpus):
    save, report = corpus
    sets = load_sets(save)
    # the empty data_folder puts the audio in egs/mini/downloads/mini
    assert (save / "data_root.txt").read_text().strip() == str(save.parent.parent / "downloads" / "mini")
    assert {s: v["utterances"] for s, v in report["sets"].items()} == {"train": 140, "valid": 60, "test": 40}
    assert report["kept"] == 240 and report["total_dropped"] == 0
    assert report["sets"]["valid"]["emotions"] == {e: 12 for e in sorted(EMOTIONS)}
    assert report["sets"]["valid"]["speakers"] == 2 and report["sample_rates"] == {"16000": 240}
    assert report["dropped"] == {} and report["notes"] == {}  # nothing lost, no utterance clipped
    assert json.loads((save / "prepare_report.json").read_text())["kept"] == report["kept"]
    for manifest in sets.values():
        for utt_id, u in manifest.items():
            assert set(u) == {"wav", "duration", "transcript", "emotion", "arousal", "valence", "dominance",
                              "speaker", "gender"}
            assert u["wav"].startswith("{data_root}/wav/") and u["wav"].endswith(f"/{utt_id}.wav")
            assert u["emotion"] in EMOTIONS and u["gender"] in ("M", "F")
            assert all(0.0 <= u[k] <= 1.0 for k in ("arousal", "valence", "dominance"))
    # one file checked in full: 16 kHz mono PCM-16 whose length is the manifest duration
    u = sets["valid"][min(sets["valid"])]
    info = sf.info(str(wav_path(u, save)))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert info.frames / 16000 == pytest.approx(u["duration"], abs=1e-4)
    assert 1.0 < u["duration"] < 6.0


def test_every_sentence_in_all_five_emotions_by_both_genders(corpus):
    save, _ = corpus
    by_sentence = {}
    for manifest in load_sets(save).values():
        for u in manifest.values():
            by_sentence.setdefault(u["transcript"], set()).add((u["emotion"], u["gender"]))
    assert len(by_sentence) == SMALL["num_sentences"]
    for sentence, combos in by_sentence.items():
        assert combos == {(e, g) for e in EMOTIONS for g in ("M", "F")}, sentence


def test_splits_are_sentence_disjoint(corpus):
    save, report = corpus
    sentences = {name: {u["transcript"] for u in m.values()} for name, m in load_sets(save).items()}
    assert not sentences["train"] & sentences["valid"]
    assert not sentences["train"] & sentences["test"]
    assert not sentences["valid"] & sentences["test"]
    assert report["sentences"] == {"train": 14, "valid": 6, "test": 4}


def test_avd_follows_style_and_varies_within_style(corpus):
    save, _ = corpus
    rows = [u for m in load_sets(save).values() for u in m.values()]
    mean = {e: np.mean([[u["arousal"], u["valence"], u["dominance"]] for u in rows if u["emotion"] == e], 0)
            for e in EMOTIONS}
    a, v, d = 0, 1, 2
    assert mean["sad"][a] < mean["neutral"][a] < min(mean["happy"][a], mean["angry"][a], mean["surprise"][a])
    assert mean["angry"][v] < mean["neutral"][v] < mean["happy"][v]
    assert mean["sad"][v] < mean["neutral"][v]
    assert mean["angry"][d] > max(mean[e][d] for e in EMOTIONS if e != "angry")
    assert mean["sad"][d] < min(mean[e][d] for e in EMOTIONS if e != "sad")
    happy_arousal = [u["arousal"] for u in rows if u["emotion"] == "happy"]
    assert np.std(happy_arousal) > 0.01  # the jitter moves the labels inside a class


def test_avd_is_a_function_of_the_parameters():
    lo = mini.avd_from_params({"rate": 110, "pitch": 25, "range": 0, "volume": 30})
    hi = mini.avd_from_params({"rate": 210, "pitch": 25, "range": 100, "volume": 120})
    assert lo["arousal"] == 0.0 and hi["arousal"] == 1.0
    assert mini.avd_from_params(mini.STYLES["neutral"]) == pytest.approx(
        {"arousal": 0.4533, "valence": 0.4643, "dominance": 0.4602}, abs=1e-4)


def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_deterministic_for_a_seed_and_different_for_another(corpus, tmp_path):
    save, _ = corpus
    again = tmp_path / "again" / "data"
    mini.prepare_mini(tmp_path / "again_audio", again, seed=7, **SMALL)
    first, second = load_sets(save), load_sets(again)
    assert first == second  # same ids, splits, labels, durations ({data_root} hides the folder)
    for utt_id in sorted(first["test"])[:10]:
        assert file_digest(wav_path(first["test"][utt_id], save)) == file_digest(wav_path(second["test"][utt_id], again))

    other = tmp_path / "other" / "data"
    mini.prepare_mini(tmp_path / "other_audio", other, seed=8, **SMALL)
    third = load_sets(other)
    assert {u["transcript"] for u in third["valid"].values()} != {u["transcript"] for u in first["valid"].values()}


def test_rerun_skips_and_changed_options_stop(tmp_path):
    save, audio = tmp_path / "data", tmp_path / "audio"
    opts = {"num_sentences": 6, "valid_sentences": 1, "test_sentences": 1}
    mini.prepare_mini(audio, save, seed=1, **opts)
    manifest = save / "train.json"
    stamp = manifest.stat().st_mtime_ns
    assert mini.prepare_mini(audio, save, seed=1, **opts) is None  # nothing to do
    assert manifest.stat().st_mtime_ns == stamp
    with pytest.raises(OptionsChangedError, match="overwrite"):
        mini.prepare_mini(audio, save, seed=2, **opts)
    report = mini.prepare_mini(audio, save, seed=2, overwrite=True, **opts)
    assert {s: v["utterances"] for s, v in report["sets"].items()} == {"train": 40, "valid": 10, "test": 10}


def test_a_deleted_wav_is_reported_not_lost(tmp_path):
    save, audio = tmp_path / "data", tmp_path / "audio"
    opts = {"num_sentences": 6, "valid_sentences": 1, "test_sentences": 1, "seed": 1}
    mini.prepare_mini(audio, save, **opts)
    victim_id, victim = next(iter(json.loads((save / "valid.json").read_text()).items()))
    wav_path(victim, save).unlink()
    (save / ".done.prepare").unlink()  # force the manifests to be re-made over the existing audio
    report = mini.prepare_mini(audio, save, **opts)
    assert report["dropped"] == {"missing_wav": {"count": 1, "examples": [victim_id]}} and report["total_dropped"] == 1
    assert report["sets"]["valid"]["utterances"] == 9 and report["kept"] == sum(s["utterances"] for s in report["sets"].values())


def test_bad_arguments_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="official"):
        mini.prepare_mini("", tmp_path, split="fold1")
    with pytest.raises(ValueError, match="en-us"):
        mini.prepare_mini("", tmp_path / "x", voices=["en-gb"])
    with pytest.raises(ValueError, match="training"):
        mini.prepare_mini("", tmp_path / "y", num_sentences=10, valid_sentences=5, test_sentences=5)


def prosodic_features(path):
    """F0 (YIN) level and spread on voiced frames, RMS level and spread, speaking time."""
    import librosa

    y, sr = sf.read(str(path), dtype="float32")
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0]
    voiced = rms > 0.1 * rms.max()
    f0 = librosa.yin(y, fmin=60, fmax=450, sr=sr, frame_length=1024, hop_length=256)
    f0 = f0[: len(voiced)][voiced[: len(f0)]]
    return [np.log(np.median(f0)), np.log(np.percentile(f0, 90) / np.percentile(f0, 10)),
            np.log(rms[voiced].mean()), np.std(np.log(rms[voiced] + 1e-5)), np.log(len(y) / sr)]


def test_styles_are_recoverable_from_prosody(corpus):
    """A logistic regression on five prosodic statistics, trained on `train`, reaches UA >= 0.6
    on the unseen sentences of `valid` (the labels live in the audio, not in the words)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    save, _ = corpus
    sets = load_sets(save)

    def xy(name):
        items = sorted(sets[name].items())
        x = np.array([prosodic_features(wav_path(u, save)) + [u["gender"] == "F"] for _, u in items])
        return x, np.array([u["emotion"] for _, u in items])

    (x_tr, y_tr), (x_va, y_va) = xy("train"), xy("valid")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x_tr, y_tr)
    ua = recall_score(y_va, clf.predict(x_va), average="macro")
    assert ua >= 0.6, f"UA {ua:.3f}"
