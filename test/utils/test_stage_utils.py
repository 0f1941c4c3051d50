"""The shared stage utilities: atomic writes, done markers, sharding and config overrides."""
import json
import os
import stat

import pytest

from rellm.utils.config import ConfigError, load_config, split_overrides
from rellm.utils.io import atomic_write_json, read_jsonl, write_jsonl
from rellm.utils.sharding import merge_jsonl_shards, shard_keys, shard_path
from rellm.utils.stage import DoneMarker, OptionsChangedError


def test_atomic_write_leaves_old_file_on_error_and_uses_umask_mode(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):  # the writer fails half-way through
        write_jsonl(target, ({"b": 2} if i == 0 else _raise() for i in range(2)))
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def _raise():
    raise RuntimeError("boom")


def test_done_marker_skips_same_options_and_refuses_changed_ones(tmp_path):
    marker = DoneMarker(tmp_path, "prep")
    opts = {"fold": 5, "classes": 4}
    assert not marker.is_done(opts)
    marker.mark_done(opts)
    assert marker.is_done({"classes": 4, "fold": 5})  # key order does not matter
    with pytest.raises(OptionsChangedError, match=r"classes: 4 -> 5.*--overwrite=true"):
        marker.is_done({"fold": 5, "classes": 5})
    assert not marker.is_done({"fold": 5, "classes": 5}, overwrite=True)


@pytest.mark.parametrize("n_keys,num_shards", [(10, 3), (7, 7), (3, 5), (0, 2)])
def test_shards_partition_the_sorted_keys(n_keys, num_shards):
    keys = [f"utt{i:03d}" for i in reversed(range(n_keys))]
    parts = [shard_keys(keys, j, num_shards) for j in range(1, num_shards + 1)]
    assert [k for part in parts for k in part] == sorted(keys)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError):
        shard_keys(keys, num_shards + 1, num_shards)


def test_merge_sorts_and_rejects_missing_shards_and_duplicates(tmp_path):
    write_jsonl(shard_path(tmp_path, "out", 2, 2), [{"utt_id": "b"}, {"utt_id": "a"}])
    with pytest.raises(FileNotFoundError, match=r"1 of 2 shards .* \(jobs \[1\]\)"):
        merge_jsonl_shards(tmp_path, "out", 2)
    write_jsonl(shard_path(tmp_path, "out", 1, 2), [{"utt_id": "c"}])
    path, n = merge_jsonl_shards(tmp_path, "out", 2)
    assert n == 3 and [r["utt_id"] for r in read_jsonl(path)] == ["a", "b", "c"]
    write_jsonl(shard_path(tmp_path, "out", 1, 2), [{"utt_id": "a"}])
    with pytest.raises(ValueError, match="duplicate utt_id 'a'"):
        merge_jsonl_shards(tmp_path, "out", 2)


def test_config_overrides_are_typed_and_unknown_keys_are_errors(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("seed: 1\nname: x\nsizes: [1, 2]\nlinear: !new:torch.nn.Linear\n  in_features: 2\n"
                    "  out_features: !ref <seed>\n")
    cfg = load_config(conf, split_overrides(["--seed=3", "--name", "a b", "--sizes=[4]"]))
    assert cfg["seed"] == 3 and cfg["name"] == "a b" and cfg["sizes"] == [4]
    assert cfg["linear"].out_features == 3  # the override reaches the !ref'd nested block
    with pytest.raises(ConfigError, match=r"unknown option\(s\) --lr .* the config has: linear, name, seed, sizes"):
        load_config(conf, {"lr": "0.1"})
