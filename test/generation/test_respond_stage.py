"""Stage 3 (rellm.bin.respond) end to end with a toy LLM: sharding, resuming, merging, cleaning."""
import json
import shutil
from pathlib import Path

import pytest

from rellm.bin import respond
from rellm.generation import respond_stage
from rellm.generation.teacher import plan_batches
from rellm.utils.config import load_config, split_overrides
from rellm.utils.io import read_jsonl, write_jsonl
from rellm.utils.sharded_stage import ShardedStage
from rellm.utils.sharding import shard_keys

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf" / "respond.yaml"
SENTENCES = ["Can you set a timer?", "My sister is coming over tonight.", "The package arrived at the door.",
             "I got the results of the test this morning.", "Wait, the concert is tonight?"]
EMOTIONS = ["neutral", "happy", "angry", "sad", "surprise"]


def write_manifest(path, n=7, empty_transcript=("u006",)):
    manifest = {}
    for i in range(n):
        utt = f"u{i:03d}"
        manifest[utt] = {"wav": f"{{data_root}}/{utt}.wav", "duration": 1.0 + i / 10,
                         "transcript": "" if utt in empty_transcript else SENTENCES[i % 5],
                         "emotion": EMOTIONS[i % 5], "arousal": None, "valence": None, "dominance": None,
                         "speaker": "spk", "gender": "F"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def run(argv):
    respond.main([str(CONF), *argv])


def args(manifest, out, llm, **extra):
    base = {"manifest": manifest, "output_dir": out, "teacher_llm": llm, "max_new_tokens": 6, "batch_size": 2}
    base.update(extra)
    return [f"--{k}={v}" for k, v in base.items()]


def test_batches_are_planned_before_sharding():
    lengths = {f"u{i}": (i * 7) % 5 for i in range(11)}
    batches = plan_batches(lengths, 3)
    assert sorted(u for b in batches.values() for u in b) == sorted(lengths)
    for b in batches.values():  # each batch holds neighbours in length order
        assert max(lengths[u] for u in b) - min(lengths[u] for u in b) <= 2
    union = [u for j in (1, 2, 3) for k in shard_keys(batches, j, 3) for u in batches[k]]
    assert sorted(union) == sorted(lengths)
    assert plan_batches(lengths, 3) == batches  # deterministic


def test_one_shard_and_two_shards_give_identical_files(tmp_path, toy_llm_dir):
    manifest = write_manifest(tmp_path / "data" / "train.json")
    one, two = tmp_path / "one", tmp_path / "two"
    run(args(manifest, one, toy_llm_dir))
    run(args(manifest, one, toy_llm_dir, merge="true"))
    for j in (1, 2):
        run(args(manifest, two, toy_llm_dir, shard=j, num_shards=2))
    run(args(manifest, two, toy_llm_dir, merge="true", num_shards=2))
    for name in ("expected.jsonl", "continuation.jsonl", "raw/expected.jsonl", "raw/continuation.jsonl"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name

    expected = read_jsonl(one / "raw" / "expected.jsonl")
    assert [r["utt_id"] for r in expected] == [f"u{i:03d}" for i in range(6)]  # sorted, u006 skipped
    first = expected[0]
    assert set(first) == {"utt_id", "emotion", "transcript", "instruction", "output", "early_stop"}
    assert first["instruction"] == "I feel neutral. " and first["transcript"] == "Can you set a timer?"
    assert expected[4]["instruction"] == "I feel surprised. "
    continuation = read_jsonl(one / "raw" / "continuation.jsonl")
    assert continuation[0]["instruction"] == "Continue the following text in a coherent style: "

    report = json.loads((one / "report.json").read_text())
    for task in ("expected", "continuation"):
        t = report["tasks"][task]
        assert t["prompted"] == {"kept": 6, "dropped": {"no_transcript": {"count": 1, "examples": ["u006"]}},
                                 "total_dropped": 1}
        assert t["generated"] == 6 and t["written"] == t["cleaning"]["kept"]
        assert t["cleaning"]["kept"] + t["cleaning"]["total_dropped"] == 6
        assert t["early_stop"] == sum(r["early_stop"] for r in read_jsonl(one / "raw" / f"{task}.jsonl"))


def test_only_missing_shards_rerun_and_changed_options_stop(tmp_path, toy_llm_dir, caplog):
    manifest = write_manifest(tmp_path / "data" / "train.json", n=5, empty_transcript=())
    out = tmp_path / "out"
    for j in (1, 2):
        run(args(manifest, out, toy_llm_dir, shard=j, num_shards=2, tasks="[expected]"))
    shard1 = out / "shards" / "expected.1of2.jsonl"
    shard2 = out / "shards" / "expected.2of2.jsonl"
    before = shard1.stat().st_mtime_ns
    kept = shard2.read_bytes()
    shard2.unlink()
    (out / "shards" / ".done.respond.2of2").unlink()
    with pytest.raises(FileNotFoundError, match="jobs \\[2\\]"):
        run(args(manifest, out, toy_llm_dir, merge="true", num_shards=2, tasks="[expected]"))
    for j in (1, 2):
        run(args(manifest, out, toy_llm_dir, shard=j, num_shards=2, tasks="[expected]"))
    assert shard1.stat().st_mtime_ns == before  # done shard skipped
    assert shard2.read_bytes() == kept  # missing shard redone, same text
    from rellm.utils.stage import OptionsChangedError

    with pytest.raises(OptionsChangedError, match="max_new_tokens"):
        run(args(manifest, out, toy_llm_dir, shard=1, num_shards=2, tasks="[expected]", max_new_tokens=7))


def test_merge_cleans_and_counts_drops(tmp_path):
    manifest = write_manifest(tmp_path / "data" / "train.json", n=4, empty_transcript=())
    out = tmp_path / "out"
    outputs = ["That is lovely news!", "I'm sorry, but I cannot help with that.", "As an AI language model, no.",
               "Oh no, what happened?"]
    write_jsonl(out / "shards" / "expected.1of1.jsonl", [
        {"utt_id": f"u{i:03d}", "emotion": EMOTIONS[i], "transcript": SENTENCES[i], "instruction": "I feel x. ",
         "output": o, "early_stop": False} for i, o in enumerate(outputs)])
    argv = args(manifest, out, "unused-no-model-needed", tasks="[expected]")
    hp = load_config(CONF, split_overrides(argv))  # the shard's done marker, as its job would have written it
    ShardedStage("respond", out, 1).shard_marker(1).mark_done(respond_stage.options(hp, respond_stage.teacher_tasks(hp)))
    run([*argv, "--merge=true"])
    kept = read_jsonl(out / "expected.jsonl")
    assert [r["utt_id"] for r in kept] == ["u000", "u003"]
    cleaning = json.loads((out / "report.json").read_text())["tasks"]["expected"]["cleaning"]
    assert cleaning["dropped"] == {
        "as_an_ai_language_model": {"count": 1, "examples": [{"utt_id": "u002", "output": outputs[2]}]},
        "refusal_cannot": {"count": 1, "examples": [{"utt_id": "u001", "output": outputs[1]}]}}
    assert cleaning["kept"] == 2 and cleaning["total_dropped"] == 2
    assert len(read_jsonl(out / "raw" / "expected.jsonl")) == 4  # nothing lost: raw keeps every generation


def test_responses_to_other_transcripts_are_never_reused(tmp_path, toy_llm_dir):
    # stage 1 re-run with other sentences keeps the manifest's path and ids: finished responses must not pass
    manifest = write_manifest(tmp_path / "data" / "train.json", n=4, empty_transcript=())
    out = tmp_path / "out"
    run(args(manifest, out, toy_llm_dir, tasks="[expected]"))
    run(args(manifest, out, toy_llm_dir, tasks="[expected]", merge="true"))
    data = json.loads(manifest.read_text())
    data["u002"]["transcript"] = "A storm rolled over the hills."
    manifest.write_text(json.dumps(data), encoding="utf-8")
    from rellm.utils.stage import OptionsChangedError

    for extra in ({}, {"merge": "true"}, {"overwrite": "true"}):  # --overwrite alone would skip: same options
        with pytest.raises(OptionsChangedError, match=r"holds 3 response\(s\) .*u002 in .*'A storm rolled over"):
            run(args(manifest, out, toy_llm_dir, tasks="[expected]", **extra))
    shutil.rmtree(out)  # what the message says to do
    run(args(manifest, out, toy_llm_dir, tasks="[expected]"))
    run(args(manifest, out, toy_llm_dir, tasks="[expected]", merge="true"))
    by_id = {r["utt_id"]: r for r in read_jsonl(out / "raw" / "expected.jsonl")}
    assert by_id["u002"]["transcript"] == "A storm rolled over the hills."
    run(args(manifest, out, toy_llm_dir, tasks="[expected]"))  # up to date again: skipped, no error


def test_user_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        from rellm.utils.config import run_main

        run_main(respond.main, [str(CONF), f"--manifest={tmp_path}/missing.json", f"--output_dir={tmp_path}/o"])
    assert "ERROR: manifest" in capsys.readouterr().err
