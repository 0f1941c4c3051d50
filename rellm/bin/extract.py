"""Stage 2: frozen Whisper encoder states + emotion-encoder embeddings and A/V/D, per utterance.

    python -m rellm.bin.extract conf/extract.yaml --manifest data/<split>/<set>.json \\
        --output_dir dump/<split>/<set> --emotion_encoder_dir exp/emotion_encoder/<split> \\
        --shard J --num_shards N                      # one job of the JOB=1:N array
    python -m rellm.bin.extract conf/extract.yaml ... --merge true --num_shards N

Writes the feature cache read by ``rellm.features.cache.FeatureCache(output_dir)``
(layout in that module), ``report.json`` (cached and skipped utterances by reason:
``rellm.utils.drop_report``; A/V/D annotation counts) and ``features.json``. Finished shards are
skipped on re-runs; changed options stop with a message (``--overwrite=true``): the shard/marker/merge
skeleton is ``rellm.utils.sharded_stage``, the work ``rellm.features.extraction``.
"""
from rellm.features.extract_stage import run_stage
from rellm.utils.config import load_config, parse_stage_args, run_main


def main(argv=None):
    config_path, overrides = parse_stage_args(argv, description=__doc__)
    return run_stage(load_config(config_path, overrides))


if __name__ == "__main__":
    run_main(main)
