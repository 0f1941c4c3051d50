"""Stage 2a: train a small dimensional emotion encoder (recipes without a pretrained one, e.g. mini).

    python -m rellm.bin.train_emotion_encoder conf/emotion_encoder.yaml \\
        --train_manifest data/<split>/train.json --valid_manifest data/<split>/valid.json \\
        --output_folder exp/emotion_encoder/<split>

Trains ``rellm.models.emotion_encoder.EmotionEncoder`` with a small config on A/V/D
regression + 5 categories, logs valid CCC and UA per epoch, and saves the best epoch,
frozen, as ``config.json`` + ``model.safetensors`` (the audeering checkpoint format) with
``train_log.txt`` and ``metrics.json``. Stage 2 loads that folder via --emotion_encoder_dir.
"""
from rellm.training.emotion_encoder_stage import run_stage
from rellm.utils.config import load_config, parse_stage_args, run_main


def main(argv=None):
    config_path, overrides = parse_stage_args(argv, description=__doc__)
    return run_stage(load_config(config_path, overrides), config_path, overrides)


if __name__ == "__main__":
    run_main(main)
