"""A trained model on disk, as its readers see it: an experiment folder or an exported folder.

Two layouts hold the same model (the ``SpeechLLM`` constructor arguments, the trained tensors and the
names of its frozen base models):

* an experiment folder ``exp/<model>/<split>/seed<k>`` (stage 4): ``final/model.json`` +
  ``final/trainable.safetensors``;
* an exported folder (``python -m rellm.export``): ``rellm_model.json`` + ``trainable.safetensors`` at
  its top, with the base models that are not public checkpoints inside it.

The base models (``llm``, ``speech_encoder``, ``emotion_encoder``) are registry names
(``rellm.pretrained``), hub names or local folders. A local folder is found through
``base_model_folders``: its path relative to the folder holding the config (written by
``SpeechLLM.save_final`` and by the export), so a model is found from the model folder itself, whatever
the working directory. Experiments saved before that record name their folders relative to the recipe
folder (where the stages run): those are read relative to the working directory, then to the recipe
folder of the documented layout ``<recipe>/<exp_root>/<model>/<split>/seed<k>``; nothing else is searched.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rellm.models.final_state import ModelFolderError, base_model_path
from rellm.utils.experiment_dir import FINAL_CONFIG, FINAL_WEIGHTS, ExperimentDir

EXPORT_CONFIG = "rellm_model.json"
EXPORT_WEIGHTS = FINAL_WEIGHTS
EXPORT_FORMAT = "rellm-export"
EXPORT_FORMAT_VERSION = 1
BASE_MODEL_KEYS = ("llm", "speech_encoder", "emotion_encoder")


def avd_head_trained(meta, exp_dir=None):
    """Whether the model trained its A/V/D head, as its config records it (``avd_head_trained``).

    Experiments saved before that record: ``lambda_dim > 0`` in their resolved ``hyperparams.yaml``.
    """
    if "avd_head_trained" in meta:
        return bool(meta["avd_head_trained"])
    if exp_dir is None:
        return True
    hparams = ExperimentDir(exp_dir).hyperparams
    if not hparams.is_file():
        return True
    match = re.search(r"^lambda_dim:\s*([0-9.eE+-]+)", hparams.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return match is None or float(match.group(1)) > 0


@dataclass
class ModelFolder:
    """What a reader needs of a trained model folder (:func:`open_model_folder`)."""

    kind: str  # "experiment" | "export"
    root: Path
    config_dir: Path  # final/ or the exported folder
    meta: dict
    weights: Path
    base_models: dict = field(default_factory=dict)  # key -> where to load it from (folder or name), or None

    @property
    def system(self):
        """``rellm`` (with the emotion nuance module) or ``blsp_emo``."""
        return self.meta.get("system") or ("rellm" if int(self.meta["model"].get("emotion_dim", 0)) else "blsp_emo")

    @property
    def avd_head_trained(self):
        return avd_head_trained(self.meta, self.root if self.kind == "experiment" else None)

    @property
    def whisper_window_seconds(self):
        """The Whisper window the model was trained with (stage 2's features.json), None for the full 30 s."""
        return (self.meta.get("speech_features") or {}).get("whisper_window_seconds")

    def load_state(self):
        """The trained tensors (adapter, LoRA, heads) on the CPU."""
        from safetensors.torch import load_file

        return load_file(str(self.weights), device="cpu")


def is_exported(path):
    return (Path(path) / EXPORT_CONFIG).is_file()


def open_model_folder(path):
    """The :class:`ModelFolder` of an experiment folder (with ``final/``) or an exported folder."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelFolderError(f"{root}: no such folder; give an experiment folder (exp/<model>/<split>/seed<k>) "
                               "or a folder written by python -m rellm.export")
    if is_exported(root):
        with open(root / EXPORT_CONFIG, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format") != EXPORT_FORMAT or int(meta.get("format_version", 0)) > EXPORT_FORMAT_VERSION:
            raise ModelFolderError(f"{root / EXPORT_CONFIG} is format {meta.get('format')!r} version "
                                   f"{meta.get('format_version')}; this rellm reads {EXPORT_FORMAT} up to version "
                                   f"{EXPORT_FORMAT_VERSION} (update rellm)")
        weights = root / EXPORT_WEIGHTS
        if not weights.is_file():
            raise ModelFolderError(f"{weights} is missing; copy the whole exported folder")
        folder = ModelFolder("export", root, root, meta, weights)
        recipe_layout = False
    else:
        exp = ExperimentDir(root)
        if not exp.has_final():
            raise ModelFolderError(f"{root} has no trained model ({exp.final.name}/{FINAL_CONFIG}, "
                                   f"{exp.final.name}/{FINAL_WEIGHTS}); run stage 4 for it, or give an exported "
                                   "folder")
        with open(exp.final_config, encoding="utf-8") as f:
            meta = json.load(f)
        folder = ModelFolder("experiment", root, exp.final, meta, exp.final_weights)
        recipe_layout = True
    for key in BASE_MODEL_KEYS:
        folder.base_models[key] = base_model_path(meta, key, folder.config_dir, recipe_layout=recipe_layout)
    return folder
