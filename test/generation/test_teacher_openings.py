"""The mini recipe's teacher device: emotion openings the teacher continues, replies cut at a sentence end."""
import pytest

from rellm.bin import respond
from rellm.generation.teacher import TeacherTask, compose_reply, cut_after_last_sentence
from rellm.utils.io import read_jsonl

from test_respond_stage import CONF, args, write_manifest

OPENINGS = {"happy": ["Great news!", "How lovely!"], "sad": ["I'm so sorry."]}


def test_cut_after_last_sentence():
    assert cut_after_last_sentence("Sure. I can help with") == ("Sure.", True)
    assert cut_after_last_sentence('He said "go!" and then') == ('He said "go!"', True)
    assert cut_after_last_sentence("no end here") == ("no end here", False)
    assert cut_after_last_sentence("3.5 kg of rice") == ("3.5 kg of rice", False)  # a decimal point is no end


def test_compose_reply_marks_a_cut_reply_finished():
    assert compose_reply("Oh!", " It is late. And then", True, truncate_to_sentence=True) == ("Oh! It is late.", False)
    assert compose_reply("Oh!", " It is late. And then", True) == ("Oh! It is late. And then", True)
    assert compose_reply("", "and then", True, truncate_to_sentence=True) == ("and then", True)  # nothing to cut at


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
    extra = {"tasks": "[expected]", "expected_openings": '{happy: ["Great news!"], sad: ["So sorry."]}'}
    respond.main([str(CONF), *args(manifest, out, toy_llm_dir, **extra)])
    respond.main([str(CONF), *args(manifest, out, toy_llm_dir, merge="true", **extra)])
    records = {r["utt_id"]: r for r in read_jsonl(out / "raw" / "expected.jsonl")}
    by_emotion = {}
    for r in records.values():
        by_emotion.setdefault(r["emotion"], []).append(r["output"])
    assert all(o.startswith("Great news!") for o in by_emotion["happy"])
    assert all(o.startswith("So sorry.") for o in by_emotion["sad"])
    assert not any(o.startswith(("Great news!", "So sorry.")) for o in by_emotion["neutral"])
