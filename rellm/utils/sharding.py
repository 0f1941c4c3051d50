"""Deterministic sharding of utterance ids and merging of per-shard JSONL files.

Stages 2, 3 and 5 run as ``JOB=1:N`` arrays. Each job takes the same slice of
the sorted ids whatever the backend, writes ``<out>/shards/<name>.<j>of<N>.jsonl``
atomically plus a done marker, and a merge step concatenates the shards in
utterance-id order, so 1 shard and N shards give identical files.
"""
from pathlib import Path

from rellm.utils.io import read_jsonl, write_jsonl


def shard_keys(keys, shard, num_shards):
    """Contiguous slice ``shard`` (1-based) of ``num_shards`` over the sorted keys."""
    if num_shards < 1 or not 1 <= shard <= num_shards:
        raise ValueError(f"shard must be in 1..{num_shards}, got {shard}")
    keys = sorted(keys)
    per, extra = divmod(len(keys), num_shards)
    start = (shard - 1) * per + min(shard - 1, extra)
    stop = start + per + (1 if shard <= extra else 0)
    return keys[start:stop]


def shard_path(output_dir, name, shard, num_shards, suffix=".jsonl"):
    return Path(output_dir) / "shards" / f"{name}.{shard}of{num_shards}{suffix}"


def merge_jsonl_shards(output_dir, name, num_shards, key="utt_id", output=None):
    """Merge ``num_shards`` shard files into ``<output_dir>/<name>.jsonl`` sorted by ``key``.

    A missing shard is an error naming the shard and the job to re-run; a key
    seen twice is an error (never a silent duplicate).
    """
    missing = [j for j in range(1, num_shards + 1) if not shard_path(output_dir, name, j, num_shards).exists()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {num_shards} shards of '{name}' in {output_dir} are missing "
            f"(jobs {missing[:10]}); re-run the stage to finish them"
        )
    records, seen = [], set()
    for j in range(1, num_shards + 1):
        for rec in read_jsonl(shard_path(output_dir, name, j, num_shards)):
            if rec[key] in seen:
                raise ValueError(f"duplicate {key} {rec[key]!r} while merging {name} shards in {output_dir}")
            seen.add(rec[key])
            records.append(rec)
    records.sort(key=lambda r: r[key])
    out = Path(output) if output else Path(output_dir) / f"{name}.jsonl"
    write_jsonl(out, records)
    return out, len(records)
