"""The layout of an experiment folder ``exp/<model>/<split>/seed<seed>``: the one place that names its files.

    hyperparams.yaml             the resolved config (hyperparams.prev.yaml: the one a resumed run replaced)
    env.log                      versions and the rellm git revision
    log.txt                      the run's log
    train_log.txt                one line per epoch and step (SpeechBrain FileTrainLogger)
    save/<step>/CKPT+...         the checkpoints of each alignment step
    final/model.json             base-model ids, constructor args, prompts: what stage 5 loads
    final/trainable.safetensors  the trained parameters (adapter, LoRA, heads); final/ is replaced as one unit
    tensorboard/                 TensorBoard event files of the training curves (``rellm.training.curves``)
    training_curves.png, .json   the training curves drawn and their per-epoch figures
    .started.train               the options and inputs of the run that save/ belongs to (a resume must match)
    .replaced/                   save/, final/ and the run records of an earlier run with other options or inputs, set aside by
                                 --overwrite=true until the new run has written its final/ (then removed)

Stage 4 writes it (``rellm.training.align``, ``rellm.training.stage``), ``rellm.training.blsp_emo_import`` writes
``final/`` from a released checkpoint, stages 5 and ``respond_audio`` read ``final/``. It sits in ``rellm.utils``
because every layer reads the folder (the model loader, the importer, stage 6's training-data check).
"""
import datetime
import json
import shutil
from pathlib import Path

FINAL_DIR = "final"
FINAL_CONFIG = "model.json"
FINAL_WEIGHTS = "trainable.safetensors"
# the training curves (written by rellm.training.curves)
TENSORBOARD_DIR = "tensorboard"
CURVES_PNG = "training_curves.png"
CURVES_JSON = "training_curves.json"


class ExperimentDir:
    """Paths inside one experiment folder."""

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self):
        return f"ExperimentDir({str(self.root)!r})"

    @property
    def hyperparams(self):
        return self.root / "hyperparams.yaml"

    @property
    def previous_hyperparams(self):
        return self.root / "hyperparams.prev.yaml"

    @property
    def env_log(self):
        return self.root / "env.log"

    @property
    def log(self):
        return self.root / "log.txt"

    @property
    def train_log(self):
        return self.root / "train_log.txt"

    @property
    def save(self):
        return self.root / "save"

    def checkpoints(self, step_name):
        """``save/<step_name>``: the checkpoint folder of one training step."""
        return self.save / step_name

    @property
    def final(self):
        """``final/``: where stage 4 (or an importer) leaves the model stage 5 loads."""
        return self.root / FINAL_DIR

    @property
    def final_config(self):
        return self.final / FINAL_CONFIG

    @property
    def final_weights(self):
        return self.final / FINAL_WEIGHTS

    def has_final(self):
        """Whether ``final/`` holds a complete trained model (both files)."""
        return self.final_config.is_file() and self.final_weights.is_file()

    # ---------------------------------------------------------------- which run save/ belongs to
    @property
    def started(self):
        return self.root / ".started.train"

    @property
    def replaced(self):
        return self.root / ".replaced"

    def started_run(self):
        """The ``run`` fingerprint save/ belongs to (``.started.train``), or None (no run started since it exists)."""
        try:
            return json.loads(self.started.read_text(encoding="utf-8")).get("run")
        except (OSError, ValueError):
            return None

    def mark_started(self, run):
        """Record that save/ now belongs to the run ``run`` (a fingerprint of its options and inputs)."""
        from rellm.utils.io import atomic_write_json

        atomic_write_json(self.started, {"run": run, "date": datetime.datetime.now().isoformat(timespec="seconds")})

    def has_previous_run(self):
        return self.save.exists() or self.final.exists()

    def set_aside_previous_run(self):
        """Move save/, final/ and the per-run records (config, epoch log, curves) of an earlier run into ``.replaced/``
        (replacing an older set-aside): the new run starts from its initialisation, while the old weights stay on
        disk until the new final/ exists. ``log.txt`` keeps both runs' lines."""
        if self.replaced.exists():
            shutil.rmtree(self.replaced)
        self.replaced.mkdir(parents=True)
        moved = []
        # the training curves (rellm.training.curves) belong to the run too: a new run's epochs start again at 1
        curves = [self.root / name for name in (TENSORBOARD_DIR, CURVES_PNG, CURVES_JSON)]
        for path in (self.save, self.final, self.hyperparams, self.previous_hyperparams, self.train_log, *curves):
            if path.exists():
                path.rename(self.replaced / path.name)
                moved.append(path.name)
        self.started.unlink(missing_ok=True)
        return moved

    def remove_set_aside(self):
        if self.replaced.exists():
            shutil.rmtree(self.replaced)
