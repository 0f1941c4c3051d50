"""Stage 4 with ``blsp_emo_source=released``: the released BLSP-Emo checkpoint as the blsp_emo experiment.

    python -m rellm.bin.import_blsp_emo conf/import_blsp_emo.yaml --src /data/blsp-emo \
        --output_folder exp/blsp_emo/fold5/seed1

Writes ``<output_folder>/final/`` (model.json + trainable.safetensors: what stage 5 scores as the
blsp_emo system and what RE-LLM's ``init_from`` continues from), ``<output_folder>/whisper/`` (its
Whisper encoder), ``import.log`` and the options fingerprint ``.done.import_blsp_emo``: a re-run with
the same options does nothing, other options stop and ask for ``--overwrite=true``. The checkpoint's
LLM is checked against ``llm_name`` and its Whisper encoder against ``check_whisper`` (the one stage 2
extracts features with), so the paper's comparison runs on the models BLSP-Emo was trained with.
"""
from rellm.training.blsp_emo_import import run_stage
from rellm.utils.config import load_config, parse_stage_args, run_main


def main(argv=None):
    config_path, overrides = parse_stage_args(argv, description=__doc__)
    return run_stage(load_config(config_path, overrides))


if __name__ == "__main__":
    run_main(main)
