"""Checkpoint pieces for stage 4: atomic checkpoint folders, trainable-only model state, RNG state.

SpeechBrain's ``Checkpointer`` writes ``CKPT.yaml`` first and the parameter files after
it, so a run killed while saving leaves a "complete-looking" broken checkpoint.
``AtomicCheckpointer`` saves into a hidden staging folder and renames it into place:
a checkpoint folder either exists complete or not at all, and the previous one is kept
until the new one is in place.
"""
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
from speechbrain.utils.distributed import if_main_process

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
        os.replace(ckpt.path, final)
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
    def save(self, path):
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.own_state_dict().items()}
        torch.save({"parameters": state, "base_models": self.base_models, "model_config": self.model.config}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch):
        del end_of_epoch
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("base_models") and self.base_models and saved["base_models"] != self.base_models:
            raise ValueError(
                f"checkpoint {path} was trained on base models {saved['base_models']}, this run uses "
                f"{self.base_models}; use another --output_folder"
            )
        self.model.load_own_state_dict(saved["parameters"])


@register_checkpoint_hooks
class RNGState:
    """Python, NumPy and torch (CPU and CUDA) RNG states, so a resumed run draws the same dropout masks."""

    @mark_as_saver
    def save(self, path):
        state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        torch.save(state, path)

    @mark_as_loader
    def load(self, path, end_of_epoch):
        del end_of_epoch
        state = torch.load(path, weights_only=False)  # own file: holds Python/NumPy RNG tuples
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


@register_checkpoint_hooks
class WarmupDecayLR:
    """Linear warm-up from 0 to ``lr`` over ``warmup_steps`` optimizer steps, then linear decay to 0 at ``total_steps``.

    (DeepSpeed's WarmupDecayLR shape with a linear warm-up; method.md 6.)
    """

    def __init__(self, lr, warmup_steps, total_steps=None):
        self.lr, self.warmup_steps, self.total_steps = float(lr), int(warmup_steps), total_steps
        self.step_count = 0

    def value(self, step):
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if not self.total_steps:
            return self.lr
        remaining = max(self.total_steps - step, 0) / max(self.total_steps - self.warmup_steps, 1)
        return self.lr * remaining

    def apply(self, optimizer):
        """Set the learning rate for the next optimizer step; returns it."""
        lr = self.value(self.step_count)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self):
        self.step_count += 1

    @mark_as_saver
    def save(self, path):
        torch.save({"step_count": self.step_count, "total_steps": self.total_steps}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch):
        del end_of_epoch
        self.step_count = int(torch.load(path, weights_only=True)["step_count"])
