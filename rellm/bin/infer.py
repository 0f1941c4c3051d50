"""Stage 5: empathetic responses and SER answers of one system on one test set.

    python -m rellm.bin.infer conf/infer.yaml --system NAME \\
        --model_dir exp/<system>/<split>/seed<seed> --manifest data/<split>/<set>.json \\
        --feats_dir dump/<split>/<set> --output_dir <model_dir>/infer/<set> --shard J --num_shards N
    python -m rellm.bin.infer conf/infer.yaml ... --merge true --num_shards N

Writes ``shards/responses.JofN.jsonl`` per job and, on merge, ``responses.jsonl`` (records
``{utt_id, transcript, emotion, response, ser_output, ser_pred}``) plus ``report.json``
(answered and unanswered utterances by reason: ``rellm.utils.drop_report``; the SER parse outcome per label).
The shard/marker/merge skeleton is ``rellm.utils.sharded_stage``; the work is ``rellm.generation.inference``;
``--system`` is any name of ``rellm.systems`` (``python -m rellm.systems names``).
"""
from rellm.generation.infer_stage import run_stage
from rellm.utils.config import load_config, parse_stage_args, run_main


def main(argv=None):
    config, overrides = parse_stage_args(argv, description=__doc__)
    return run_stage(load_config(config, overrides))


if __name__ == "__main__":
    run_main(main)
