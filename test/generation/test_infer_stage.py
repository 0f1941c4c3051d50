"""Stage 5 (rellm.bin.infer) with toy models: all three systems, sharding, records, report."""
import json
from pathlib import Path

import pytest
import torch

from rellm.bin import infer
from rellm.data.emotions import EMOTIONS
from rellm.features.cache import FeatureCache
from rellm.generation import inference as I
from rellm.testing.reference_decoding import reference_generate
from rellm.testing.toy_recipe import write_toy_recipe_data
from rellm.utils.io import read_jsonl

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf" / "infer.yaml"


def run(system, model_dir, root, out, llm, **extra):
    base = {"system": system, "model_dir": model_dir, "manifest": root / "data" / "test.json",
            "feats_dir": root / "dump" / "test", "output_dir": out, "text_llm": llm,
            "response_max_new_tokens": 5, "ser_max_new_tokens": 4, "batch_size": 3}
    base.update(extra)
    infer.main([str(CONF), *[f"--{k}={v}" for k, v in base.items()]])


@pytest.fixture
def toy_data(tmp_path):
    return write_toy_recipe_data(tmp_path / "toy", num_utts=7, sets=("test",))


@pytest.fixture
def trained_dir(tmp_path, toy_llm_dir):
    """A stage-4-like experiment folder holding a RE-LLM SpeechLLM over the toy LLM."""
    from rellm.models.speech_llm import SpeechLLM

    torch.manual_seed(0)
    model = SpeechLLM(str(toy_llm_dir), speech_dim=24, emotion_dim=8, lora_r=4, lora_alpha=8,
                      lora_target_modules=["q_proj", "v_proj"])
    with torch.no_grad():
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    folder = tmp_path / "exp" / "rellm" / "official" / "seed1"
    model.save_final(folder / "final", extra={"base_models": {"llm": str(toy_llm_dir)}})
    return folder


def test_text_only_one_and_two_shards_identical(tmp_path, toy_data, toy_llm_dir):
    model_dir = tmp_path / "exp" / "text_only" / "official" / "seed1"
    one, two = model_dir / "infer" / "one", model_dir / "infer" / "two"
    run("text_only", model_dir, toy_data, one, toy_llm_dir)
    run("text_only", model_dir, toy_data, one, toy_llm_dir, merge="true")
    for j in (1, 2):
        run("text_only", model_dir, toy_data, two, toy_llm_dir, shard=j, num_shards=2)
    run("text_only", model_dir, toy_data, two, toy_llm_dir, merge="true", num_shards=2)
    assert (one / "responses.jsonl").read_bytes() == (two / "responses.jsonl").read_bytes()
    records = read_jsonl(one / "responses.jsonl")
    assert [r["utt_id"] for r in records] == [f"test_utt{i:03d}" for i in range(7)]
    assert set(records[0]) == {"utt_id", "transcript", "emotion", "response", "ser_output", "ser_pred"}
    assert all(r["ser_pred"] in (*EMOTIONS, "unknown") for r in records)
    report = json.loads((one / "report.json").read_text())
    assert report["kept"] == 7 and report["dropped"] == {} and report["total_dropped"] == 0
    assert sum(report["ser_pred_counts"].values()) == 7


def test_speech_system_matches_the_reference_generate_path(tmp_path, toy_data, trained_dir):
    out = trained_dir / "infer" / "test"
    run("rellm", trained_dir, toy_data, out, "unused")
    run("rellm", trained_dir, toy_data, out, "unused", merge="true")
    records = {r["utt_id"]: r for r in read_jsonl(out / "responses.jsonl")}
    assert len(records) == 7

    # the same utterance through the HF reference path (rellm.testing.reference_decoding) gives the same reply
    from rellm.models.speech_llm import SpeechLLM

    model = SpeechLLM.from_pretrained_dir(trained_dir)
    feats = FeatureCache(toy_data / "dump" / "test")
    utt = "test_utt002"
    states = feats.whisper(utt).unsqueeze(0)
    E, M = model.encode_speech(states, torch.tensor([states.shape[1]]), feats.emotion_embedding(utt).unsqueeze(0))
    inputs = model.build_generation_inputs(
        "You are a helpful assistant. Your response should fulfill requests with empathy toward user's emotion tone.",
        [""], speech=(E, M))
    ids = reference_generate(model, inputs, max_new_tokens=5, min_new_tokens=1)[0].tolist()
    stops = set(model.layout.stop_token_ids) | {model.tokenizer.convert_tokens_to_ids("<|im_start|>")}
    ids = ids[: next((i for i, t in enumerate(ids) if t in stops), len(ids))]
    assert records[utt]["response"] == model.tokenizer.decode(ids, skip_special_tokens=True).strip()
    # the emotion head's label is recorded too: the argmax of the model's head on the same adapter output
    with torch.no_grad():
        head = EMOTIONS[int(model.classify_emotion(E, M).argmax(-1))]
    assert records[utt]["ser_head_pred"] == head
    assert all(r["ser_head_pred"] in EMOTIONS for r in records.values())


def test_missing_features_are_counted_not_dropped(tmp_path, toy_data, trained_dir, monkeypatch):
    class Partial(FeatureCache):
        def keys(self):
            return [k for k in super().keys() if k != "test_utt004"]  # noqa: SIM118 (not iterable)

    monkeypatch.setattr(I, "load_features", lambda hp: Partial(hp["feats_dir"]))
    out = trained_dir / "infer" / "partial"
    run("blsp_emo", trained_dir, toy_data, out, "unused")
    run("blsp_emo", trained_dir, toy_data, out, "unused", merge="true")
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == 6 and report["total_dropped"] == 1
    assert report["dropped"] == {"no_features": {"count": 1, "examples": ["test_utt004"]}}


def test_unknown_system_is_a_clear_error(tmp_path, toy_data):
    from rellm.utils.config import ConfigError

    with pytest.raises(ConfigError, match="--system must be one of text_only, blsp_emo, blsp_emo_ft, rellm"):
        run("whisper", tmp_path, toy_data, tmp_path / "o", "unused")
