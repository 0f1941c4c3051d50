"""A sharded stage (stage 3 here; stages 2 and 5 share the shard/marker/merge code) with jobs SIGKILLed mid-shard
through the real job runner: re-run with --pick failed and locally; nothing lost, nothing doubled, finished shards
not redone."""
import json
import os
import subprocess
import sys
from pathlib import Path

from rellm.testing.toy_models import save_toy_llm
from rellm.utils.io import read_jsonl
from rellm.utils.stage import read_command_file

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "mini" / "conf" / "respond.yaml"
SENTENCES = ["Can you set a timer?", "My sister is coming over tonight.", "The package arrived at the door.",
             "I got the results of the test this morning.", "Wait, the concert is tonight?"]
EMOTIONS = ["neutral", "happy", "angry", "sad", "surprise"]


def _runner(args, fault=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("RELLM_FAULT", None)
    if fault:
        env["RELLM_FAULT"] = fault
    return subprocess.run([sys.executable, str(REPO / "tools" / "run.py"), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_killed_shards_rerun_with_pick_failed_and_merge_each_utterance_once(tmp_path):
    llm = save_toy_llm(tmp_path / "llm")
    manifest = {f"u{i:03d}": {"wav": f"{{data_root}}/u{i:03d}.wav", "duration": 1.0, "transcript": SENTENCES[i % 5],
                              "emotion": EMOTIONS[i % 5], "arousal": None, "valence": None, "dominance": None,
                              "speaker": "spk", "gender": "F"} for i in range(12)}
    (tmp_path / "train.json").write_text(json.dumps(manifest))
    out, logs = tmp_path / "responses", tmp_path / "log"
    stage = [sys.executable, "-m", "rellm.bin.respond", CONF, "--manifest", tmp_path / "train.json",
             "--output_dir", out, "--teacher_llm", llm, "--max_new_tokens", "4", "--batch_size", "2",
             "--num_shards", "3"]
    array = ["--max_jobs_run", "2", "JOB=1:3", logs / "respond.JOB.log", *stage, "--shard", "JOB"]

    # job 2 dies while writing its first output file, job 3 after writing its outputs but before its done marker
    proc = _runner(array, fault="write/expected.2of3.jsonl,mark_done/respond.3of3")
    assert proc.returncode == 1
    assert "2 of 3 job(s) failed" in proc.stderr and "--pick failed" in proc.stderr
    shards = out / "shards"
    assert (shards / ".done.respond.1of3").is_file()
    assert not (shards / ".done.respond.2of3").exists() and not (shards / ".done.respond.3of3").exists()
    assert not (shards / "expected.2of3.jsonl").exists()  # the killed write left no file under its final name
    assert (shards / "expected.3of3.jsonl").is_file()  # written, but not marked done: it will be redone
    done_1 = (shards / ".done.respond.1of3").stat().st_mtime_ns
    log_1 = (logs / "respond.1.log").read_text()

    proc = _runner(["--pick", "failed", *array])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "running 2 job(s)" in proc.stdout  # only the two killed jobs
    assert (logs / "respond.1.log").read_text() == log_1 and (shards / ".done.respond.1of3").stat().st_mtime_ns == done_1
    proc = _runner(["--max_jobs_run", "2", "JOB=2:3", *array[3:]])  # a plain re-run: done shards are not redone
    assert proc.returncode == 0
    for j in (2, 3):
        assert "already done with these options; nothing to do" in (logs / f"respond.{j}.log").read_text()
    assert (shards / ".done.respond.1of3").stat().st_mtime_ns == done_1

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("RELLM_FAULT", None)
    merged = subprocess.run([*map(str, stage), "--merge", "true"], cwd=REPO, env=env, capture_output=True, text=True,
                            check=False)
    assert merged.returncode == 0, merged.stderr[-2000:]
    for name in ("expected", "continuation"):
        raw = [r["utt_id"] for r in read_jsonl(out / "raw" / f"{name}.jsonl")]
        assert sorted(raw) == sorted(manifest), name  # each utterance exactly once
        assert len(raw) == len(set(raw)) == 12
    # command.txt beside the outputs: each shard job's command (the re-run ones included), then the merge's
    python = read_command_file(out)[1]
    assert [c.split("--shard")[-1].strip() for c in python[:3]] == ["1", "2", "3"]
    assert python[3].startswith("python -m rellm.bin.respond ") and python[3].endswith("--merge true")
