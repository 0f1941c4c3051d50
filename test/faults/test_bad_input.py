"""Bad input: truncated and zero-length wavs (stages 1 and 2 count and name them and go on), a damaged feature
cache file and a manifest with a missing field (one-line errors saying what to do)."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rellm.data.corpora.common import probe_audio
from rellm.data.manifest import read_manifest
from rellm.utils.stage import UserError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "test" / "features"))


def _tone(seconds, sr=16000):
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.fixture
def bad_corpus(tmp_path):
    root = tmp_path / "wavs"
    root.mkdir()
    for name in ("good1", "good2"):
        sf.write(root / f"{name}.wav", _tone(1.0), 16000)
    sf.write(root / "full.wav", _tone(1.0), 16000)
    (root / "truncated.wav").write_bytes((root / "full.wav").read_bytes()[:30])  # cut inside the header
    (root / "zero.wav").write_bytes(b"")
    (root / "full.wav").unlink()
    entries = {n: {"wav": str(root / f"{n}.wav"), "duration": 1.0, "transcript": "x", "emotion": "neutral",
                   "arousal": 0.5, "valence": 0.5, "dominance": 0.5, "speaker": "s", "gender": "F"}
               for n in ("good1", "good2", "truncated", "zero")}
    return root, entries


def test_stage1_probe_names_the_reason_of_each_bad_wav(bad_corpus):
    root, _ = bad_corpus
    assert probe_audio(root / "good1.wav")[1] is None
    assert probe_audio(root / "truncated.wav") == (None, "unreadable_audio")
    assert probe_audio(root / "zero.wav") == (None, "empty_audio")


def test_stage2_counts_and_names_bad_wavs_and_caches_the_rest(bad_corpus, tmp_path):
    from test_feature_extraction import tiny_whisper_parts

    from rellm.features.cache import FeatureCache
    from rellm.features.emotion import EmotionEmbedder
    from rellm.features.extraction import extract_shard, merge_shards
    from rellm.features.whisper_states import WhisperStateExtractor
    from rellm.models.emotion_encoder import EmotionEncoder, small_emotion_config

    _, entries = bad_corpus
    model, fe = tiny_whisper_parts()
    whisper = WhisperStateExtractor(model.get_encoder(), fe)
    emotion = EmotionEmbedder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)).eval())
    out = tmp_path / "dump"
    options = {"whisper": "tiny", "emotion_encoder": "tiny"}
    extract_shard(entries, out, 1, 1, options, lambda: whisper, lambda: emotion, batch_size=2)
    report = merge_shards(entries, out, 1, options, meta=options)
    assert report["kept"] == 2
    assert {reason: slot["count"] for reason, slot in report["dropped"].items()} == {
        "unreadable_audio": 1, "empty_audio": 1}, report["dropped"]
    text = json.dumps(report)
    assert "truncated" in text and "zero" in text  # named in the report's examples
    assert sorted(FeatureCache(out).keys()) == ["good1", "good2"]

    # a damaged cache file: an error naming it and the command that rebuilds it
    cache = FeatureCache(out)
    blob = out / cache.record("good2")["whisper_file"]
    blob.write_bytes(blob.read_bytes()[: blob.stat().st_size // 3])
    with pytest.raises(UserError, match=re.escape(str(blob)) + r" is damaged .* python -m rellm.bin.extract .*"
                       r"--overwrite=true"):
        FeatureCache(out).whisper(max(cache.keys(), key=lambda k: cache.record(k)["whisper_offset"]))
    emo = out / cache.record("good1")["emotion_embedding_file"]
    emo.write_bytes(emo.read_bytes()[:40])
    with pytest.raises(UserError, match=re.escape(str(emo)) + " is damaged"):
        FeatureCache(out).emotion_embedding("good1")


def test_a_manifest_entry_without_a_field_is_a_one_line_error(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"u1": {"wav": "{data_root}/u1.wav", "duration": 1.0, "transcript": "x", "emotion": "sad"},
                                "u2": {"wav": "{data_root}/u2.wav", "transcript": "y", "emotion": "sad"}}))
    with pytest.raises(UserError) as err:
        read_manifest(path, "/data")
    assert str(err.value) == (f"{path}: utterance 'u2' has no duration field (every entry needs wav, duration, "
                              "transcript, emotion); re-run stage 1 (data preparation) or fix that entry")
    path.write_text('{"u1": {"wav": ')
    with pytest.raises(UserError, match="is not a valid JSON manifest"):
        read_manifest(path)


def test_stage_cli_prints_the_manifest_error_on_one_line(tmp_path):
    from fault_helpers import run_module

    path = tmp_path / "test.json"
    path.write_text(json.dumps({"u1": {"wav": "{data_root}/u1.wav", "transcript": "x", "emotion": "sad"}}))
    proc = run_module("rellm.bin.respond", [REPO / "egs" / "mini" / "conf" / "respond.yaml", "--manifest", path,
                                            "--output_dir", tmp_path / "out", "--teacher_llm", tmp_path / "none"])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"ERROR: {path}: utterance 'u1' has no duration field")
