"""The mini recipe's step-1 set: neutral eSpeak NG speech of sentences the SER corpus does not have."""
import json
from pathlib import Path

import pytest

from rellm.bin import prepare as prepare_stage
from rellm.data.corpora import mini
from rellm.data.corpora.mini_asr import generate_sentences, plan_asr_set

CONF = Path(__file__).resolve().parents[2] / "egs" / "mini" / "conf" / "prepare_step1.yaml"


def test_sentences_are_distinct_and_never_the_ser_corpus():
    sentences = generate_sentences(300, seed=1, exclude=mini.SENTENCES)
    assert len(set(sentences)) == 300
    assert not set(sentences) & set(mini.SENTENCES)
    assert generate_sentences(300, seed=1) == generate_sentences(300, seed=1) != generate_sentences(300, seed=2)
    # a sentence that the SER corpus happened to contain is excluded
    first = generate_sentences(1, seed=1)[0]
    assert first not in generate_sentences(300, seed=1, exclude=[first])
    with pytest.raises(ValueError, match="num_sentences"):
        generate_sentences(10_000, seed=1)


def test_plan_is_neutral_both_voices_and_split_by_sentence():
    plan = plan_asr_set(4321, ["en-us", "en-us+f3"], num_sentences=20, valid_sentences=4)
    assert len(plan) == 40 and {p["gender"] for p in plan} == {"M", "F"}
    neutral = mini.STYLES["neutral"]
    assert all(abs(p["params"]["rate"] - neutral["rate"]) <= neutral["rate"] * mini.JITTER["rate"] + 1 for p in plan)
    valid = {p["transcript"] for p in plan if p["set"] == "valid"}
    train = {p["transcript"] for p in plan if p["set"] == "train"}
    assert len(valid) == 4 and not valid & train


def test_stage_1_makes_unlabelled_manifests(tmp_path):
    pytest.importorskip("espeakng_loader")
    save = tmp_path / "data" / "mini_asr"
    prepare_stage.main([str(CONF), f"--save_folder={save}", "--num_sentences=6", "--valid_sentences=1"])
    train = json.loads((save / "train.json").read_text())
    valid = json.loads((save / "valid.json").read_text())
    assert len(train) == 10 and len(valid) == 2
    entry = next(iter(train.values()))
    assert entry["emotion"] is None and entry["arousal"] is None and entry["duration"] > 1.0
    assert (tmp_path / "downloads" / "mini_asr" / entry["wav"].replace("{data_root}/", "")).is_file()
