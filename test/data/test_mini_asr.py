"""The mini recipe's step-1 set: neutral eSpeak NG speech of sentences the SER corpus does not have."""
import json
from pathlib import Path

import pytest

from rellm.bin import prepare as prepare_stage
from rellm.data.corpora import mini
from rellm.data.corpora.mini_asr import generate_sentences, plan_asr_set, read_sentences_file
from rellm.testing.prerequisites import require_module

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
    require_module("espeakng_loader")
    save = tmp_path / "data" / "mini_asr"
    prepare_stage.main([str(CONF), f"--save_folder={save}", "--num_sentences=6", "--valid_sentences=1"])
    train = json.loads((save / "train.json").read_text())
    valid = json.loads((save / "valid.json").read_text())
    assert len(train) == 10 and len(valid) == 2
    entry = next(iter(train.values()))
    assert entry["emotion"] is None and entry["arousal"] is None and entry["duration"] > 1.0
    assert (tmp_path / "downloads" / "mini_asr" / entry["wav"].replace("{data_root}/", "")).is_file()


def test_sentences_file_is_sampled_without_repeats_or_ser_sentences(tmp_path):
    path = tmp_path / "sentences.txt"
    lines = ["# written by hand", "The cat sat on the warm mat.", "", "A storm rolled over the hills.",
             "the cat sat on the warm mat.", mini.SENTENCES[3].upper(), "We sold the old piano.",
             "Bright lanterns lit the narrow street."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sentences, counts = read_sentences_file(path, 4, seed=7, exclude=mini.SENTENCES)
    assert counts == {"lines": 6, "duplicate": 1, "excluded": 1}
    assert sorted(sentences) == ["A storm rolled over the hills.", "Bright lanterns lit the narrow street.",
                                 "The cat sat on the warm mat.", "We sold the old piano."]
    two, _ = read_sentences_file(path, 2, seed=7, exclude=mini.SENTENCES)
    assert two == read_sentences_file(path, 2, seed=7, exclude=mini.SENTENCES)[0] and set(two) <= set(sentences)
    with pytest.raises(ValueError, match=r"1\.\.4 .*6 sentences, 1 repeated, 1 of the SER corpus"):
        read_sentences_file(path, 5, seed=7, exclude=mini.SENTENCES)
    with pytest.raises(FileNotFoundError, match="one sentence per line"):
        read_sentences_file(tmp_path / "absent.txt", 1, seed=7)


def test_stage_1_speaks_a_sentences_file(tmp_path):
    require_module("espeakng_loader")
    path = tmp_path / "sentences.txt"
    path.write_text("The cat sat on the warm mat.\nA storm rolled over the hills.\nWe sold the old piano.\n"
                    + mini.SENTENCES[0] + "\n", encoding="utf-8")
    save = tmp_path / "data" / "mini_asr"
    prepare_stage.main([str(CONF), f"--save_folder={save}", "--num_sentences=3", "--valid_sentences=1",
                        f"--sentences_file={path}", "--voices=[en-us]"])
    manifests = {name: json.loads((save / f"{name}.json").read_text()) for name in ("train", "valid")}
    transcripts = sorted(u["transcript"] for m in manifests.values() for u in m.values())
    assert transcripts == ["A storm rolled over the hills.", "The cat sat on the warm mat.", "We sold the old piano."]
    assert len(manifests["valid"]) == 1
    report = json.loads((save / "prepare_report.json").read_text())
    assert report["sentences_file"] == {"path": str(path), "lines": 4, "duplicate": 0, "excluded": 1}
