"""The sharded-stage skeleton, the one drop-report shape and the command each done marker records."""
import json

import pytest

from rellm.utils import stage as stage_module
from rellm.utils.config import run_main
from rellm.utils.drop_report import DropReport, ReasonCounts
from rellm.utils.io import read_jsonl
from rellm.utils.sharded_stage import ShardedStage
from rellm.utils.stage import OptionsChangedError, read_command_file, record_command


@pytest.fixture(autouse=True)
def no_recorded_command(monkeypatch):
    monkeypatch.setattr(stage_module, "_python_command", None)
    monkeypatch.delenv("RELLM_RECIPE_COMMAND", raising=False)


def test_drop_report_shape_and_shard_sums():
    a, b = DropReport(max_examples=2), DropReport(max_examples=2)
    a.keep(3)
    a.drop("missing_audio", "u1")
    a.drop("missing_audio", "u2")
    a.drop("missing_audio", "u3")  # counted, past the examples
    b.keep()
    b.drop("empty_audio", "u9")
    b.drop("missing_audio", "u7")
    assert a.as_dict() == {"kept": 3, "dropped": {"missing_audio": {"count": 3, "examples": ["u1", "u2"]}},
                           "total_dropped": 3}
    total = DropReport(max_examples=2)
    for part in (a, b):
        total.update(json.loads(json.dumps(part.as_dict())))  # as a merge reads the shard reports back
    assert total.as_dict() == {
        "kept": 4,
        "dropped": {"empty_audio": {"count": 1, "examples": ["u9"]},  # sorted by reason
                    "missing_audio": {"count": 4, "examples": ["u1", "u2"]}},
        "total_dropped": 5}
    notes = ReasonCounts()
    notes.add("truncated", count=2)
    assert notes.as_dict() == {"truncated": {"count": 2, "examples": []}} and notes.counts() == {"truncated": 2}


def run_toy_stage(out, num_shards, keys, options, merge_options=None, overwrite=False, calls=None):
    """A toy sharded stage: each record is its key, upper-cased; the merge reports the count."""
    stage = ShardedStage("toy", out, num_shards)
    for j in range(1, num_shards + 1):
        def work(j=j):
            if calls is not None:
                calls.append(j)
            stage.write_jsonl("items", j, [{"utt_id": k, "text": k.upper()} for k in stage.keys(keys, j)])
            return {"backend": "toy"}

        stage.run_shard(j, options, work, overwrite=overwrite)

    def merge():
        _, n = stage.merge_jsonl("items")
        report = DropReport()
        report.keep(n)
        return report.as_dict()

    return stage, stage.merge(merge_options or options, options, merge, overwrite=overwrite)


def test_one_shard_and_three_shards_give_identical_files(tmp_path):
    keys = [f"u{i:02d}" for i in (5, 3, 9, 1, 7, 2, 8)]
    _, one = run_toy_stage(tmp_path / "one", 1, keys, {"a": 1})
    _, three = run_toy_stage(tmp_path / "three", 3, keys, {"a": 1})
    assert (tmp_path / "one" / "items.jsonl").read_bytes() == (tmp_path / "three" / "items.jsonl").read_bytes()
    assert [r["utt_id"] for r in read_jsonl(tmp_path / "one" / "items.jsonl")] == sorted(keys)
    assert one == three == {"kept": 7, "dropped": {}, "total_dropped": 0}
    assert json.loads((tmp_path / "three" / "report.json").read_text()) == three
    marker = json.loads((tmp_path / "three" / "shards" / ".done.toy.2of3").read_text())
    assert marker["backend"] == "toy" and marker["options"] == {"a": 1}


def test_done_shards_skip_changed_options_stop_and_overwrite_redoes(tmp_path):
    keys = ["a", "b", "c", "d"]
    calls = []
    run_toy_stage(tmp_path, 2, keys, {"a": 1}, calls=calls)
    stamp = (tmp_path / "items.jsonl").stat().st_mtime_ns
    run_toy_stage(tmp_path, 2, keys, {"a": 1}, calls=calls)
    assert calls == [1, 2] and (tmp_path / "items.jsonl").stat().st_mtime_ns == stamp  # nothing redone
    with pytest.raises(OptionsChangedError, match="a: 1 -> 2"):
        run_toy_stage(tmp_path, 2, keys, {"a": 2}, calls=calls)
    run_toy_stage(tmp_path, 2, keys, {"a": 2}, overwrite=True, calls=calls)
    assert calls == [1, 2, 1, 2]


def test_merge_refuses_unfinished_shards_and_shards_of_other_options(tmp_path):
    stage = ShardedStage("toy", tmp_path, 2)
    stage.run_shard(1, {"a": 1}, lambda: stage.write_jsonl("items", 1, [{"utt_id": "a"}]))
    with pytest.raises(FileNotFoundError, match=r"jobs \[2\].*--shard J --num_shards 2"):
        stage.merge({"a": 1}, {"a": 1}, dict)
    stage.run_shard(2, {"a": 1}, lambda: stage.write_jsonl("items", 2, [{"utt_id": "b"}]))
    with pytest.raises(OptionsChangedError):  # the merge's options say the shards should have been made with a: 2
        stage.merge({"a": 2}, {"a": 2}, dict)
    assert not (tmp_path / "items.jsonl").exists()


def test_a_shard_killed_before_its_marker_is_redone(tmp_path):
    stage = ShardedStage("toy", tmp_path, 1)

    def dies():
        stage.write_jsonl("items", 1, [{"utt_id": "a"}])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stage.run_shard(1, {"a": 1}, dies)
    assert not stage.shard_marker(1).path.exists()
    assert stage.run_shard(1, {"a": 1}, lambda: None) is True


def test_markers_record_the_recipe_and_python_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("RELLM_RECIPE_COMMAND", "./run.sh --stage 3 --stop_stage 3")
    stage = ShardedStage("toy", tmp_path, 2)
    for j in (1, 2):
        record_command("rellm.bin.toy", ["conf/toy.yaml", "--note=it's", "--shard", str(j), "--num_shards", "2"])
        stage.run_shard(j, {}, lambda j=j: stage.write_jsonl("items", j, [{"utt_id": str(j)}]))
    assert not (tmp_path / "shards" / "command.txt").exists()  # the merge lists the shard jobs
    record_command("rellm.bin.toy", ["conf/toy.yaml", "--merge", "true", "--num_shards", "2"])
    stage.merge({}, {}, dict)
    assert (tmp_path / "command.txt").read_text() == (
        "recipe: ./run.sh --stage 3 --stop_stage 3\n"
        "python: python -m rellm.bin.toy conf/toy.yaml '--note=it'\"'\"'s' --shard 1 --num_shards 2\n"
        "python: python -m rellm.bin.toy conf/toy.yaml '--note=it'\"'\"'s' --shard 2 --num_shards 2\n"
        "python: python -m rellm.bin.toy conf/toy.yaml --merge true --num_shards 2\n")
    recipe, python = read_command_file(tmp_path)
    assert recipe == "./run.sh --stage 3 --stop_stage 3" and len(python) == 3


def test_run_main_records_the_stage_module_and_its_arguments(tmp_path):
    from rellm.utils.stage import DoneMarker

    def main(argv):
        DoneMarker(tmp_path, "toy").mark_done({"argv": argv})

    main.__module__ = "rellm.bin.toy"
    run_main(main, ["conf/toy.yaml", "--output_dir", "a b"])
    assert read_command_file(tmp_path) == (None, ["python -m rellm.bin.toy conf/toy.yaml --output_dir 'a b'"])
    assert json.loads((tmp_path / ".done.toy").read_text())["command"] == (
        "python -m rellm.bin.toy conf/toy.yaml --output_dir 'a b'")
