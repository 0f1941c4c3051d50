"""The trained state of a SpeechLLM in an experiment's ``final/``: tensors in safetensors, the rest in JSON.

The file names are those of ``rellm.training.experiment_dir``.
"""
import json
from pathlib import Path

from rellm.training.experiment_dir import FINAL_CONFIG, FINAL_WEIGHTS, ExperimentDir


def save_final_state(folder, state, meta):
    """Write ``folder/trainable.safetensors`` (tensors only: loading it can run no code) and ``folder/model.json``."""
    from safetensors.torch import save_file

    from rellm.utils.io import atomic_path, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / FINAL_WEIGHTS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    atomic_write_json(folder / FINAL_CONFIG, meta)


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
