"""The layout of an experiment folder ``exp/<model>/<split>/seed<seed>``: the one place that names its files.

    hyperparams.yaml             the resolved config (hyperparams.prev.yaml: the one a resumed run replaced)
    env.log                      versions and the rellm git revision
    log.txt                      the run's log
    train_log.txt                one line per epoch and step (SpeechBrain FileTrainLogger)
    save/<step>/CKPT+...         the checkpoints of each alignment step
    final/model.json             base-model ids, constructor args, prompts: what stage 5 loads
    final/trainable.safetensors  the trained parameters (adapter, LoRA, heads)

Stage 4 writes it (``rellm.training.align``, ``rellm.bin.train``), ``rellm.pretrained.blsp_emo`` writes
``final/`` from a released checkpoint, stages 5 and ``respond_audio`` read ``final/``.
"""
from pathlib import Path

FINAL_DIR = "final"
FINAL_CONFIG = "model.json"
FINAL_WEIGHTS = "trainable.safetensors"


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
