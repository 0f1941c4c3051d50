"""Stage 2: trimmed Whisper states, emotion embeddings, A/V/D sources, the cache, shards and the CLI."""
import copy
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from rellm.data.audio import AudioError, load_audio
from rellm.features.cache import FeatureCache, feature_cache_pipeline
from rellm.features.emotion import EmotionEmbedder
from rellm.features.extraction import extract_shard, merge_shards, resolve_emotion_encoder
from rellm.features.whisper_states import WhisperStateExtractor, encoder_length, shorten_window
from rellm.models.emotion_encoder import EmotionEncoder, save_emotion_encoder, small_emotion_config
from rellm.utils.stage import OptionsChangedError

OPTIONS = {"whisper": "tiny-random", "emotion_encoder": "tiny-random"}


def tiny_whisper_parts():
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                           max_source_positions=1500, max_target_positions=16, vocab_size=64,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3)
    return WhisperModel(config).eval(), WhisperFeatureExtractor(feature_size=80)


@pytest.fixture(scope="module")
def encoders():
    model, fe = tiny_whisper_parts()
    whisper = WhisperStateExtractor(model.get_encoder(), fe)
    torch.manual_seed(1)
    emotion = EmotionEmbedder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)).eval())
    return whisper, emotion


def tone(seconds, sr=16000, freq=220.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture
def corpus(tmp_path):
    """Five utterances: 16 kHz mono, a 22.05 kHz stereo one, one without A/V/D, one missing, one empty."""
    root = tmp_path / "audio dir"  # a space in the path on purpose
    root.mkdir()
    sf.write(root / "a.wav", tone(1.0), 16000)
    sf.write(root / "b.wav", tone(2.5, freq=300), 16000)
    sf.write(root / "c.wav", tone(1.5, sr=22050, channels=2), 22050)
    sf.write(root / "d.wav", tone(0.8, freq=180), 16000)
    sf.write(root / "e.wav", np.zeros(0, dtype=np.float32), 16000)

    def entry(name, duration, avd=(0.1, 0.2, 0.3)):
        return {"wav": str(root / name), "duration": duration, "transcript": "x", "emotion": "neutral",
                "arousal": avd[0], "valence": avd[1], "dominance": avd[2], "speaker": "s", "gender": "F"}

    entries = {"utt_a": entry("a.wav", 1.0), "utt_b": entry("b.wav", 2.5), "utt_c": entry("c.wav", 1.5),
               "utt_d": entry("d.wav", 0.8, avd=(None, None, None)), "utt_missing": entry("zz.wav", 1.0),
               "utt_empty": entry("e.wav", 0.0)}
    return entries


def run_all(entries, out, encoders, num_shards, **kw):
    whisper, emotion = encoders
    for j in range(1, num_shards + 1):
        extract_shard(entries, out, j, num_shards, OPTIONS, lambda: whisper, lambda: emotion, batch_size=2, **kw)
    return merge_shards(entries, out, num_shards, OPTIONS, meta={"note": "test"})


def test_audio_is_mono_16k_and_bad_files_have_reasons(tmp_path, corpus):
    stereo = load_audio(corpus["utt_c"]["wav"])
    assert stereo.ndim == 1 and stereo.dtype == np.float32 and len(stereo) == 24000  # 1.5 s at 16 kHz
    with pytest.raises(AudioError) as err:
        load_audio(corpus["utt_missing"]["wav"])
    assert err.value.reason == "missing_audio"
    with pytest.raises(AudioError) as err:
        load_audio(corpus["utt_empty"]["wav"])
    assert err.value.reason == "empty_audio"
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError) as err:
        load_audio(tmp_path / "junk.wav")
    assert err.value.reason == "unreadable_audio"


def test_whisper_states_are_trimmed_to_the_real_length(encoders):
    whisper, _ = encoders
    assert encoder_length(100) == 50 and encoder_length(101) == 51 and encoder_length(3000) == 1500
    waves = [tone(1.0), tone(2.5), tone(31.0)]
    states = whisper(waves)
    assert [s.shape for s in states] == [(50, 16), (125, 16), (1500, 16)]  # 31 s is cut to 30 s
    assert all(s.dtype == torch.float16 for s in states)
    # the kept frames are the first frames of the full 30 s output, batch or not
    model_out = whisper.encoder(whisper.feature_extractor([tone(2.5)], sampling_rate=16000, padding="max_length",
                                                          return_tensors="pt")["input_features"])
    assert torch.allclose(states[1].float(), model_out.last_hidden_state[0, :125], atol=1e-2)


def test_a_shorter_whisper_window_equals_an_encoder_built_with_fewer_positions():
    """``window_seconds=4``: the same weights on 400 log-mel frames, as a WhisperEncoder made for 200 positions."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    model, fe = tiny_whisper_parts()
    full = model.get_encoder()
    short = WhisperStateExtractor(copy.deepcopy(full), fe, window_seconds=4.0)
    assert short.max_samples == 64000 and short.window_seconds == 4.0
    assert short.encoder.config.max_source_positions == 200 and full.config.max_source_positions == 1500
    config = copy.deepcopy(full.config)
    config.max_source_positions = 200
    reference = WhisperEncoder(config).eval()
    weights = full.state_dict()
    weights["embed_positions.weight"] = weights["embed_positions.weight"][:200]
    reference.load_state_dict(weights)
    waves = [tone(1.0), tone(2.5, freq=300), tone(5.0)]
    states = short(waves)
    assert [s.shape for s in states] == [(50, 16), (125, 16), (200, 16)]  # 5 s is cut to the 4 s window
    mel = fe([waves[1]], sampling_rate=16000, padding="max_length", max_length=64000,
             return_tensors="pt")["input_features"]
    assert mel.shape[-1] == 400
    with torch.no_grad():
        expected = reference(mel).last_hidden_state[0, :125]
    assert torch.allclose(states[1].float(), expected, atol=1e-2)
    # and it differs from the 30 s window's states (Whisper attends to its padding): the option is not a no-op
    assert not torch.allclose(states[1].float(), WhisperStateExtractor(full, fe)([waves[1]])[0].float(), atol=1e-3)
    with pytest.raises(ValueError, match="at most the encoder's 30 s"):
        shorten_window(copy.deepcopy(full), 31.0)


def test_cache_holds_annotation_and_prediction_separately(tmp_path, corpus, encoders):
    out = tmp_path / "dump"
    report = run_all(corpus, out, encoders, num_shards=1)
    assert report["manifest_utterances"] == 6 and report["kept"] == 4 and report["total_dropped"] == 2
    assert {reason: slot["count"] for reason, slot in report["dropped"].items()} == {"missing_audio": 1,
                                                                                    "empty_audio": 1}
    assert report["avd_annotation"] == {"present": 3, "absent": 1}
    cache = FeatureCache(out)
    assert cache.keys() == ["utt_a", "utt_b", "utt_c", "utt_d"]
    assert cache.whisper("utt_b").shape == (125, 16) and cache.whisper("utt_b").dtype == torch.float16
    assert cache.whisper("utt_c").shape == (75, 16)  # 1.5 s after resampling from 22.05 kHz
    assert cache.emotion_embedding("utt_a").shape == (32,)
    assert cache.avd_annotation("utt_a").tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert cache.avd_annotation("utt_d") is None
    # the encoder's prediction is stored for every utterance, annotated or not, and differs from the annotation
    _, direct = encoders[1]([load_audio(corpus["utt_a"]["wav"])])
    assert cache.avd_prediction("utt_a").tolist() == pytest.approx(direct[0].tolist(), abs=1e-4)
    assert cache.avd_prediction("utt_a").tolist() != pytest.approx([0.1, 0.2, 0.3])
    meta = json.loads((out / "features.json").read_text())
    assert meta["whisper_dim"] == 16 and meta["emotion_dim"] == 32
    with pytest.raises(KeyError, match="report.json"):
        cache.whisper("utt_missing")


def test_one_shard_equals_three_shards(tmp_path, corpus, encoders):
    run_all(corpus, tmp_path / "one", encoders, 1)
    run_all(corpus, tmp_path / "three", encoders, 3)
    one, three = FeatureCache(tmp_path / "one"), FeatureCache(tmp_path / "three")
    assert one.keys() == three.keys()
    for k in one:
        assert torch.allclose(one.whisper(k).float(), three.whisper(k).float(), atol=2e-3)
        assert torch.allclose(one.emotion_embedding(k), three.emotion_embedding(k), atol=1e-4)
        assert torch.allclose(one.avd_prediction(k), three.avd_prediction(k), atol=1e-4)
        assert (one.avd_annotation(k) is None) == (three.avd_annotation(k) is None)


def test_finished_shards_are_skipped_and_unfinished_ones_block_the_merge(tmp_path, corpus, encoders):
    whisper, emotion = encoders
    out = tmp_path / "dump"
    calls = []

    def counting_whisper():
        calls.append("whisper")
        return whisper

    assert extract_shard(corpus, out, 1, 2, OPTIONS, counting_whisper, lambda: emotion) is not None
    with pytest.raises(FileNotFoundError, match=r"jobs \[2\]"):
        merge_shards(corpus, out, 2, OPTIONS, meta={})
    assert extract_shard(corpus, out, 1, 2, OPTIONS, counting_whisper, lambda: emotion) is None
    assert calls == ["whisper"]  # the finished shard did not load or run the encoders again
    with pytest.raises(OptionsChangedError, match="overwrite"):
        extract_shard(corpus, out, 1, 2, {**OPTIONS, "whisper": "other"}, counting_whisper, lambda: emotion)
    extract_shard(corpus, out, 2, 2, OPTIONS, counting_whisper, lambda: emotion)
    assert merge_shards(corpus, out, 2, OPTIONS, meta={})["kept"] == 4
    stamp = (out / "index.jsonl").stat().st_mtime_ns
    merge_shards(corpus, out, 2, OPTIONS, meta={})
    assert (out / "index.jsonl").stat().st_mtime_ns == stamp


def test_speechbrain_dynamic_item(tmp_path, corpus, encoders):
    from speechbrain.dataio.dataset import DynamicItemDataset

    out = tmp_path / "dump"
    run_all(corpus, out, encoders, 1)
    cache = FeatureCache(out)
    data = {k: {"duration": corpus[k]["duration"]} for k in cache}
    dataset = DynamicItemDataset(data, dynamic_items=[feature_cache_pipeline(cache)],
                                 output_keys=["id", "whisper_states", "emotion_embedding", "avd_annotation",
                                              "avd_prediction"])
    item = dataset[1]
    assert item["id"] == "utt_b" and item["whisper_states"].shape == (125, 16)
    assert item["emotion_embedding"].shape == (32,) and item["avd_prediction"].shape == (3,)
    assert item["avd_annotation"].shape == (3,) and dataset[3]["avd_annotation"] is None


def test_old_cache_format_is_refused_with_what_to_do(tmp_path, corpus, encoders):
    out = tmp_path / "dump"
    run_all(corpus, out, encoders, 1)
    meta = json.loads((out / "features.json").read_text())
    (out / "features.json").write_text(json.dumps({**meta, "format_version": 1}))
    with pytest.raises(ValueError, match="re-run stage 2 .*--overwrite=true"):
        FeatureCache(out)


def test_emotion_encoder_resolution(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage 2a"):
        resolve_emotion_encoder("from_recipe", tmp_path / "exp" / "emotion_encoder")
    with pytest.raises(FileNotFoundError, match="emotion_encoder_dir"):
        resolve_emotion_encoder("", None)
    with pytest.raises(FileNotFoundError, match="audeering"):
        resolve_emotion_encoder(str(tmp_path / "no" / "such" / "folder"))
    save_emotion_encoder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)), tmp_path / "ee")
    assert resolve_emotion_encoder("from_recipe", tmp_path / "ee") == tmp_path / "ee"
    assert resolve_emotion_encoder(str(tmp_path / "ee"), "ignored") == tmp_path / "ee"


def test_command_line_shards_merge_and_rerun(tmp_path, corpus, repo_root):
    """``python -m rellm.bin.extract`` as run.sh calls it, with a tiny local Whisper and a 'from_recipe' encoder."""
    from rellm.bin.extract import main

    model, fe = tiny_whisper_parts()
    model.save_pretrained(tmp_path / "whisper")
    fe.save_pretrained(tmp_path / "whisper")
    save_emotion_encoder(EmotionEncoder(small_emotion_config(hidden_size=32, conv_dim=16)), tmp_path / "ee")
    data = tmp_path / "data"
    data.mkdir()
    root = str(tmp_path / "audio dir")
    manifest = {k: {**v, "wav": v["wav"].replace(root, "{data_root}")} for k, v in corpus.items()}
    (data / "test.json").write_text(json.dumps(manifest))
    (data / "data_root.txt").write_text(root + "\n")
    conf = repo_root / "egs" / "mini" / "conf" / "extract.yaml"
    args = [str(conf), "--manifest", str(data / "test.json"), "--output_dir", str(tmp_path / "dump"),
            "--whisper", str(tmp_path / "whisper"), "--emotion_encoder_dir", str(tmp_path / "ee"),
            "--num_shards", "2", "--batch_size", "2"]
    main(args + ["--shard", "1"])
    main(args + ["--shard", "2"])
    report = main(args + ["--merge", "true"])
    assert report["kept"] == 4
    assert {reason: slot["count"] for reason, slot in report["dropped"].items()} == {"empty_audio": 1,
                                                                                    "missing_audio": 1}
    assert main(args + ["--shard", "1"]) is None  # done: skipped
    assert FeatureCache(tmp_path / "dump").whisper("utt_a").shape == (50, 16)
    # the mini config's shortened Whisper window is part of what made the cache (stage 4 records it)
    assert json.loads((tmp_path / "dump" / "features.json").read_text())["whisper_window_seconds"] == 8.0
