"""Stage 3: expected responses and plain continuations from a frozen text LLM.

    python -m rellm.bin.respond conf/respond.yaml --manifest data/<split>/<set>.json \\
        --output_dir exp/responses/<split>/<set> --shard J --num_shards N
    python -m rellm.bin.respond conf/respond.yaml --manifest ... --output_dir ... --merge true --num_shards N

Writes ``shards/{expected,continuation}.JofN.jsonl`` (raw generations) per job; the merge writes
``raw/<task>.jsonl`` (everything generated), ``<task>.jsonl`` (cleaned, docs/method.md#cleaning) and
``report.json`` (per task: utterances not prompted and replies dropped by the cleaning, by reason with
examples: ``rellm.utils.drop_report``). The shard/marker/merge skeleton is ``rellm.utils.sharded_stage``.
"""
from rellm.generation.respond_stage import run_stage
from rellm.utils.config import load_config, parse_stage_args, run_main


def main(argv=None):
    config, overrides = parse_stage_args(argv, description=__doc__)
    return run_stage(load_config(config, overrides))


if __name__ == "__main__":
    run_main(main)
