"""A full disk while a stage writes its output (RLIMIT_FSIZE in the child: writes past the limit fail with EFBIG):
the stage fails, no partial file sits under its final name, nothing is marked done; the re-run finishes."""
import json
from pathlib import Path

from fault_helpers import run_module

from rellm.testing.toy_models import save_toy_llm
from rellm.utils.io import read_jsonl

REPO = Path(__file__).resolve().parents[2]


def test_a_full_disk_during_a_shard_write_marks_nothing_done(tmp_path):
    llm = save_toy_llm(tmp_path / "llm")
    manifest = {f"u{i}": {"wav": f"{{data_root}}/u{i}.wav", "duration": 1.0, "transcript": "Can you set a timer?",
                          "emotion": "sad", "arousal": None, "valence": None, "dominance": None, "speaker": "s",
                          "gender": "F"} for i in range(6)}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    out = tmp_path / "responses"
    args = [REPO / "egs" / "mini" / "conf" / "respond.yaml", "--manifest", tmp_path / "m.json", "--output_dir", out,
            "--teacher_llm", llm, "--max_new_tokens", "4", "--batch_size", "3"]
    proc = run_module("rellm.bin.respond", args, fsize_limit=300)  # the shard file is larger than 300 bytes
    assert proc.returncode != 0 and "File too large" in proc.stderr, proc.stderr[-2000:]
    shards = out / "shards"
    assert not list(shards.glob(".done.*"))
    assert not list(shards.glob("*.jsonl")) and not list(shards.glob(".*.tmp"))  # no partial or temporary file

    proc = run_module("rellm.bin.respond", args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (shards / ".done.respond.1of1").is_file()
    assert sorted(r["utt_id"] for r in read_jsonl(shards / "expected.1of1.jsonl")) == sorted(manifest)
