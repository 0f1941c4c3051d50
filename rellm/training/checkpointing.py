"""Checkpoint pieces for stage 4: atomic checkpoint folders, trainable-only model state, RNG state.

SpeechBrain's ``Checkpointer`` writes ``CKPT.yaml`` first and the parameter files after
it, so a run killed while saving leaves a "complete-looking" broken checkpoint.
``AtomicCheckpointer`` saves into a hidden staging folder and renames it into place:
a checkpoint folder either exists complete or not at all, and the previous one is kept
until the new one is in place.

Every file of a checkpoint loads without unpickling (a checkpoint folder from someone else
cannot run code on resume): parameters, optimizer and RNG state are safetensors files with
their non-tensor structure as JSON metadata (``rellm.utils.safe_state``), the schedule is JSON.
"""
import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.checkpoints import (
    Checkpoint,
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import if_main_process, main_process_only

from rellm.utils.faults import fault_point
from rellm.utils.lr_schedule import warmup_decay
from rellm.utils.safe_state import load_state, load_state_dict_hook, save_state, save_state_dict_hook

logger = logging.getLogger(__name__)
STAGING_PREFIX = ".staging-"


class AtomicCheckpointer(Checkpointer):
    """A ``Checkpointer`` whose checkpoint folders appear atomically (staging folder + rename)."""

    def __init__(self, checkpoints_dir, *args, **kwargs):
        super().__init__(checkpoints_dir, *args, **kwargs)
        self._staging = False
        if if_main_process():
            for leftover in Path(self.checkpoints_dir).glob(STAGING_PREFIX + "*"):
                logger.warning("removing the incomplete checkpoint %s left by an interrupted save", leftover)
                shutil.rmtree(leftover, ignore_errors=True)

    def add_recoverable(self, name, obj, custom_load_hook=None, custom_save_hook=None, optional_load=False):
        # Optimizer and grad scaler: SpeechBrain's default hooks torch.save/torch.load them; use safetensors.
        if custom_save_hook is None and isinstance(obj, (torch.optim.Optimizer, torch.amp.GradScaler)):
            custom_save_hook, custom_load_hook = main_process_only(save_state_dict_hook), load_state_dict_hook
        super().add_recoverable(name, obj, custom_load_hook=custom_load_hook, custom_save_hook=custom_save_hook,
                                optional_load=optional_load)

    def _stage(self, path):
        return path.parent / (STAGING_PREFIX + path.name) if self._staging else path

    def _new_checkpoint_dirpath(self):
        return self._stage(super()._new_checkpoint_dirpath())

    def _custom_checkpoint_dirpath(self, name):
        return self._stage(super()._custom_checkpoint_dirpath(name))

    def save_checkpoint(self, meta={}, end_of_epoch=True, name=None, verbosity=logging.INFO):  # noqa: B006 (SB's signature)
        self._staging = True
        try:
            ckpt = super().save_checkpoint(meta=meta, end_of_epoch=end_of_epoch, name=name, verbosity=verbosity)
        finally:
            self._staging = False
        if ckpt is None:  # non-main process
            return None
        final = ckpt.path.parent / ckpt.path.name[len(STAGING_PREFIX):]
        for f in ckpt.path.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        fault_point(f"checkpoint_staged/{Path(self.checkpoints_dir).name}")  # test hook (rellm/utils/faults.py)
        os.replace(ckpt.path, final)
        fault_point(f"checkpoint_saved/{Path(self.checkpoints_dir).name}")
        return Checkpoint(final, ckpt.meta, {k: final / Path(v).name for k, v in ckpt.paramfiles.items()})


@register_checkpoint_hooks
class TrainableParameters:
    """Checkpoint view of a ``SpeechLLM``: only its own parameters (adapter, LoRA, heads) + base-model ids.

    The frozen LLM and encoders are never written; ``base_models`` records what they were.
    """

    def __init__(self, model, base_models=None):
        self.model = model
        self.base_models = dict(base_models or {})

    @mark_as_saver
    @main_process_only  # every rank runs the save hooks (SpeechBrain): one writer, or rank 0 races rank 1
    def save(self, path):
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.own_state_dict().items()}
        save_state({"parameters": state, "base_models": self.base_models,
                    "model_config": json.loads(json.dumps(self.model.config, default=str))}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch):
        del end_of_epoch
        saved = load_state(path)
        if saved.get("base_models") and self.base_models and saved["base_models"] != self.base_models:
            raise ValueError(
                f"checkpoint {path} was trained on base models {saved['base_models']}, this run uses "
                f"{self.base_models}; use another --output_folder"
            )
        self.model.load_own_state_dict(saved["parameters"])


@register_checkpoint_hooks
class RNGState:
    """Python, NumPy and torch (CPU and CUDA) RNG states, so a resumed run draws the same dropout masks.

    torch/CUDA states are tensors, the Python and NumPy states JSON (one safetensors file, no pickle).
    """

    @mark_as_saver
    @main_process_only  # every rank runs the save hooks (SpeechBrain): one writer, or rank 0 races rank 1
    def save(self, path):
        state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        save_state(state, path)

    @mark_as_loader
    def load(self, path, end_of_epoch):
        del end_of_epoch
        state = load_state(path)
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


@register_checkpoint_hooks
class WarmupDecayLR:
    """Warm-up (linear, or ``warmup_type="log"``) from 0 to ``lr`` over ``warmup_steps`` optimizer steps, then linear
    decay to 0 at ``total_steps``
    (``rellm.utils.lr_schedule.warmup_decay``), with its step count saved in checkpoints."""

    def __init__(self, lr, warmup_steps, total_steps=None, warmup_type="linear"):
        self.lr, self.warmup_steps, self.total_steps = float(lr), int(warmup_steps), total_steps
        self.warmup_type = warmup_type  # linear | log (lr_schedule.warmup_decay)
        self.step_count = 0

    def value(self, step):
        return warmup_decay(step, self.warmup_steps, self.total_steps, peak=self.lr, warmup_type=self.warmup_type)

    def apply(self, optimizer):
        """Set the learning rate for the next optimizer step; returns it."""
        lr = self.value(self.step_count)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self):
        self.step_count += 1

    @mark_as_saver
    @main_process_only  # every rank runs the save hooks (SpeechBrain): one writer, or rank 0 races rank 1
    def save(self, path):
        from rellm.utils.io import atomic_write_json

        atomic_write_json(path, {"step_count": self.step_count, "total_steps": self.total_steps})

    @mark_as_loader
    def load(self, path, end_of_epoch):
        del end_of_epoch
        from rellm.utils.io import read_json
        from rellm.utils.safe_state import is_pickle_file

        if is_pickle_file(path):
            load_state(path)  # raises the "pickle file, not loaded" message
        self.step_count = int(read_json(path)["step_count"])
