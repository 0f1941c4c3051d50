"""Stage 4 with ``blsp_emo_source=released``: the released BLSP-Emo checkpoint written as an experiment folder.

``rellm.pretrained.blsp_emo`` converts the checkpoint (tensor names, the Whisper encoder, the LLM check); this
module adds what the experiment format needs beside it, the untrained A/V/D head (PyTorch's default Linear
initialisation under seed 0: BLSP-Emo has none, RE-LLM trains it from there), and writes ``final/`` as stage 4
would (``rellm.models.final_state``, names of ``rellm.utils.experiment_dir``). ``run_stage`` is the import as
``rellm.bin.import_blsp_emo`` runs it: locked like a training run, skipped when done with the same options and
inputs (the checkpoint's files, the LLM, the Whisper it is checked against).
"""
import logging
from pathlib import Path

from rellm.pretrained.identity import add_model
from rellm.utils.config import ConfigError
from rellm.utils.lineage import Inputs
from rellm.utils.lock import OutputLock
from rellm.utils.logging import setup_logging
from rellm.utils.stage import DoneMarker

log = logging.getLogger("rellm.pretrained")


def import_blsp_emo(src, exp_dir, llm="qwen-7b-chat", check_llm=True, check_whisper=None, prompts=None):
    """Turn the released BLSP-Emo folder ``src`` into the experiment ``exp_dir``. Returns the model.json dict.

    ``llm``: the registry name or folder of the Qwen(1) import the experiment loads (its weights are
    compared with the checkpoint's when ``check_llm``), or ``"embedded"`` to convert the checkpoint's
    own LLM into ``exp_dir/llm``. ``check_whisper``: the Whisper (name or folder) stage 2 uses, compared
    with the checkpoint's encoder. ``prompts``: recorded in model.json.
    """
    import torch

    from rellm.models.final_state import save_final_state
    from rellm.models.heads import AVDRegressionHead
    from rellm.pretrained.blsp_emo import convert_blsp_emo
    from rellm.utils.experiment_dir import ExperimentDir

    exp_dir = Path(exp_dir)
    state, meta = convert_blsp_emo(src, exp_dir, llm=llm, check_llm=check_llm, check_whisper=check_whisper,
                                   prompts=prompts)
    hidden = int(state["emotion_head.proj.weight"].shape[1])  # the LLM width: both heads read the pooled adapter output
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state["avd_head.proj.weight"] = AVDRegressionHead(hidden).proj.weight.detach().clone()
    save_final_state(ExperimentDir(exp_dir).final, state, meta)
    log.info("imported BLSP-Emo %s -> %s (LLM %s)", src, exp_dir, meta["model"]["llm"])
    return meta


PROMPT_KEYS = ("system_prompt", "system_prompt_empathetic", "behaviour_instruction")


def run_stage(hp):
    """Stage 4's import for the config ``hp``: the released checkpoint ``src`` into the experiment ``output_folder``
    (nothing to do when done with the same options and inputs)."""
    hp = dict(hp)
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
    inputs = add_model(Inputs().folder("checkpoint", src), "llm", hp["llm_name"])
    if hp["check_whisper"]:
        add_model(inputs, "whisper", hp["check_whisper"])
    if marker.is_done(options, overwrite=hp["overwrite"], inputs=inputs):
        logger.info("%s already holds the import of %s; nothing to do", output, src)
        return 0
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
