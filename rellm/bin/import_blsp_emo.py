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
from pathlib import Path

from rellm.utils.config import ConfigError, load_config, parse_stage_args, run_main
from rellm.utils.lineage import Inputs
from rellm.utils.lock import OutputLock
from rellm.utils.logging import setup_logging
from rellm.utils.stage import DoneMarker

PROMPT_KEYS = ("system_prompt", "system_prompt_empathetic", "behaviour_instruction")


def main(argv=None):
    config_path, overrides = parse_stage_args(argv, description=__doc__)
    hp = dict(load_config(config_path, overrides))
    if not hp.get("src"):
        raise ConfigError("--src is empty: give the released BLSP-Emo folder (BLSP_EMO in db.sh)")
    src, output = Path(hp["src"]).expanduser(), Path(hp["output_folder"])
    if not src.is_dir():
        raise FileNotFoundError(f"--src {src} is not a folder; expected the released BLSP-Emo checkpoint")
    options = {k: hp[k] for k in ("llm_name", "check_llm", "check_whisper", *PROMPT_KEYS)}
    options["src"] = str(src.resolve())
    with OutputLock(output, "train", what=f"the experiment {output}"):  # the lock stage 4's training takes too
        return _import(hp, src, output, options)


def _import(hp, src, output, options):
    marker = DoneMarker(output, "import_blsp_emo", stage="4")
    logger = setup_logging(output / "import.log")
    # the checkpoint's files (names, sizes, content samples: a 7B checkpoint is not read whole) and the LLM
    inputs = Inputs().folder("checkpoint", src).model("llm", hp["llm_name"])
    if hp["check_whisper"]:
        inputs.model("whisper", hp["check_whisper"])
    if marker.is_done(options, overwrite=hp["overwrite"], inputs=inputs):
        logger.info("%s already holds the import of %s; nothing to do", output, src)
        return 0
    from rellm.pretrained.blsp_emo import import_blsp_emo
    from rellm.pretrained.errors import ConversionError

    logger.info("importing the released BLSP-Emo %s into %s (LLM %s)", src, output, hp["llm_name"])
    try:
        meta = import_blsp_emo(src, output, llm=hp["llm_name"], check_llm=hp["check_llm"],
                               check_whisper=hp["check_whisper"] or None,
                               prompts={k: hp[k] for k in PROMPT_KEYS})
    except ConversionError as err:
        raise ConfigError(str(err)) from None
    marker.mark_done(options, inputs=inputs, imported_from=meta["imported_from"])
    logger.info("done: %s", meta["imported_from"])
    return 0


if __name__ == "__main__":
    run_main(main)
