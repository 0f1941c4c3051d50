"""The mini recipe's teacher device: emotion openings the teacher continues, replies tidied at the merge."""
import json

import pytest
from test_respond_stage import CONF, args, write_manifest

from rellm.bin import respond
from rellm.generation.cleaning import split_sentences, tidy_reply
from rellm.generation.teacher import TeacherTask, compose_reply
from rellm.utils.io import read_jsonl

OPENINGS = {"happy": ["Great news!", "How lovely!"], "sad": ["I'm so sorry."]}


def test_tidy_reply_drops_repeats_and_an_unfinished_sentence():
    assert tidy_reply("Sure. I can help with", True) == ("Sure.", False, ["unfinished_cut"])
    looped = "I'm so sorry. You sound sad. I'm so sorry. i'm so sorry. You sound"
    assert tidy_reply(looped, True) == ("I'm so sorry. You sound sad.", False, ["repeats_dropped", "unfinished_cut"])
    assert tidy_reply('He said "go!" and then it was', True) == ('He said "go!"', False, ["unfinished_cut"])
    assert tidy_reply("It costs 3.5 euros", True) == ("It costs 3.5 euros", True, [])  # a decimal point is no end
    assert tidy_reply("Fine. All done!", False) == ("Fine. All done!", False, [])
    assert split_sentences("A. B! C? d") == ["A.", "B!", "C?", "d"]


def test_compose_reply_puts_the_opening_first():
    assert compose_reply("Oh!", " It is late.") == "Oh! It is late."
    assert compose_reply("", " and then ") == "and then"


def test_opening_variants_are_drawn_per_utterance_and_seed():
    task = TeacherTask("expected", "sys", "I feel {emotion}. {transcript}", openings=OPENINGS)
    picks = {task.opening_for(f"u{i}", "happy") for i in range(40)}
    assert picks == set(OPENINGS["happy"])  # both variants are used
    assert task.opening_for("u1", "sad") == "I'm so sorry."
    assert task.opening_for("u1", "angry") == ""  # no openings for that emotion
    other = TeacherTask("expected", "sys", "{transcript}", openings=OPENINGS, opening_seed=7)
    assert [other.opening_for(f"u{i}", "happy") for i in range(40)] != [task.opening_for(f"u{i}", "happy")
                                                                         for i in range(40)]
    assert other.needs_emotion  # openings need the label even when the template does not name it


def test_bad_openings_are_refused():
    with pytest.raises(ValueError, match="unknown emotions"):
        TeacherTask("expected", "sys", "{transcript}", openings={"joy": ["Yay!"]})
    with pytest.raises(ValueError, match="non-empty list"):
        TeacherTask("expected", "sys", "{transcript}", openings={"sad": "I'm sorry."})


def test_stage_writes_replies_that_start_with_the_opening(tmp_path, toy_llm_dir):
    manifest = write_manifest(tmp_path / "data" / "train.json")
    out = tmp_path / "out"
    extra = {"tasks": "[expected]", "expected_openings": '{happy: ["Great news!"], sad: ["So sorry."]}',
             "tidy_replies": "true"}
    respond.main([str(CONF), *args(manifest, out, toy_llm_dir, **extra)])
    respond.main([str(CONF), *args(manifest, out, toy_llm_dir, merge="true", **extra)])
    records = {r["utt_id"]: r for r in read_jsonl(out / "raw" / "expected.jsonl")}
    by_emotion = {}
    for r in records.values():
        by_emotion.setdefault(r["emotion"], []).append(r["output"])
    assert all(o.startswith("Great news!") for o in by_emotion["happy"])
    assert all(o.startswith("So sorry.") for o in by_emotion["sad"])
    assert not any(o.startswith(("Great news!", "So sorry.")) for o in by_emotion["neutral"])
    report = json.loads((out / "report.json").read_text())["tasks"]["expected"]
    assert "tidied" in report  # counted, whatever the toy model wrote
