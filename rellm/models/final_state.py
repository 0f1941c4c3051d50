"""The trained state of a SpeechLLM in an experiment's ``final/``: tensors in safetensors, the rest in JSON.

The file names are those of ``rellm.training.experiment_dir``.
"""
import json

from rellm.training.experiment_dir import FINAL_CONFIG, FINAL_WEIGHTS, ExperimentDir


def save_final_state(folder, state, meta):
    """Write ``folder/trainable.safetensors`` (tensors only: loading it can run no code) and ``folder/model.json``
    as one unit: both are written into a staging folder that then replaces ``folder`` (a reader never sees the
    weights of one run beside the config of another)."""
    from safetensors.torch import save_file

    from rellm.utils.io import atomic_folder, write_json

    with atomic_folder(folder) as staging:
        # every tensor its own storage: views of one tensor (split LoRA, tied weights) cannot be saved as such
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in state.items()}, str(staging / FINAL_WEIGHTS))
        write_json(staging / FINAL_CONFIG, meta)


def load_final_state(model_dir):
    """``(state, meta)`` of an experiment's ``final/``: the trained tensors and ``model.json``."""
    from safetensors.torch import load_file

    exp = ExperimentDir(model_dir)
    if not exp.has_final():
        raise FileNotFoundError(
            f"{exp.final} has no trained model ({FINAL_CONFIG}, {FINAL_WEIGHTS}); run stage 4 for this experiment first"
        )
    with open(exp.final_config, encoding="utf-8") as f:
        meta = json.load(f)
    return load_file(str(exp.final_weights), device="cpu"), meta
