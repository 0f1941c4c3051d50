"""The trained state of a SpeechLLM in an experiment's ``final/``: tensors in safetensors, the rest in JSON, and
where the frozen base models its ``model.json`` names are found (``base_model_path``; ``rellm.model_folder`` reads
exported folders with the same rules).

The file names are those of ``rellm.utils.experiment_dir``.
"""
import json
import os
from pathlib import Path

from rellm.utils.experiment_dir import FINAL_CONFIG, FINAL_WEIGHTS, ExperimentDir


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


class ModelFolderError(RuntimeError):
    """A model folder that cannot be used; the message says what to do (one line)."""


def relative_base_model_folders(base_models, folder):
    """``{key: path of the base model's local folder relative to folder}`` for the base models given as
    existing local folders (registry and hub names are left out)."""
    out = {}
    for key, value in (base_models or {}).items():
        if isinstance(value, str) and value and Path(value).expanduser().is_dir():
            out[key] = os.path.relpath(Path(value).expanduser().resolve(), Path(folder).resolve())
    return out


def base_model_value(meta, key):
    """The base model ``key`` as the config names it (``llm`` from the constructor arguments), or None."""
    if key == "llm":
        return (meta.get("model") or {}).get("llm") or (meta.get("base_models") or {}).get("llm")
    return (meta.get("base_models") or {}).get(key)


def base_model_path(meta, key, config_dir, recipe_layout=True):
    """Where to load base model ``key`` from: a local folder (str) or the registry / hub name; None if unset.

    ``config_dir``: the folder of the config (``final/`` or the exported folder). ``recipe_layout``: also try
    the recipe folder of ``exp/<model>/<split>/seed<k>/final`` for experiments saved without
    ``base_model_folders`` (False for exported folders, where every path is relative to the folder).
    """
    value = base_model_value(meta, key)
    if not value:
        return None
    relative = (meta.get("base_model_folders") or {}).get(key)
    if relative:
        folder = Path(os.path.normpath(Path(config_dir) / relative))
        if folder.is_dir():
            return str(folder)
        if not recipe_layout:
            raise ModelFolderError(f"{folder} is missing ({key} of {config_dir}); copy the whole exported folder")
    path = Path(str(value)).expanduser()
    if path.is_absolute() or path.is_dir():
        return str(path)
    if recipe_layout:
        parents = Path(config_dir).resolve().parents  # final/ -> seed<k>, <split>, <model>, <exp_root>, <recipe>
        if len(parents) > 4 and (parents[4] / path).is_dir():
            return str(parents[4] / path)
    return str(value)
