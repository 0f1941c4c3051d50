"""Training curves of a stage-4 experiment, written at the end of every epoch.

    <exp>/tensorboard/                     TensorBoard event files: ``<step>/train/<stat>`` and
                                           ``<step>/valid/<stat>`` per epoch (``tensorboard --logdir exp``)
    <exp>/training_curves.png              loss (train, valid and its parts) and accuracy per epoch, a row per step
    <exp>/training_curves.json             the per-epoch figures both are drawn from, kept across a resume

The PNG carries the values it plots as JSON in its ``rellm:curves`` text chunk (``read_png_curves``), so that
a figure can be checked against the event files and the training log without reading pixels.
"""
import json
import logging
import math
from pathlib import Path

from rellm.utils.experiment_dir import CURVES_JSON, CURVES_PNG, TENSORBOARD_DIR
from rellm.utils.io import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

PNG_KEY = "rellm:curves"
NOT_PLOTTED = ("utt_per_s",)  # throughput, not a training curve (it stays in train_log.txt)


def _numbers(stats):
    return {k: float(v) for k, v in (stats or {}).items()
            if k not in NOT_PLOTTED and isinstance(v, (int, float)) and math.isfinite(float(v))}


class TrainingCurves:
    """Appends one epoch at a time; ``step`` is the step's name (``step1_semantic``, ``step2_behaviour``)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self._writer = None
        self._no_tensorboard = False

    @property
    def png(self):
        return self.folder / CURVES_PNG

    @property
    def history_file(self):
        return self.folder / CURVES_JSON

    @property
    def tensorboard_dir(self):
        return self.folder / TENSORBOARD_DIR

    def history(self):
        """``{step: {epoch (str): {"train": {...}, "valid": {...}}}}`` of the epochs logged so far."""
        if not self.history_file.is_file():
            return {}
        return json.loads(self.history_file.read_text(encoding="utf-8"))

    def log_epoch(self, step, epoch, train_stats, valid_stats=None):
        """Record one epoch in the history, the event files and the PNG (a resumed epoch replaces its record)."""
        train, valid = _numbers(train_stats), _numbers(valid_stats)
        history = self.history()
        history.setdefault(step, {})[str(int(epoch))] = {"train": train, "valid": valid}
        atomic_write_json(self.history_file, history)
        writer = self._tensorboard()
        if writer is not None:
            for split, stats in (("train", train), ("valid", valid)):
                for name, value in stats.items():
                    writer.add_scalar(f"{step}/{split}/{name}", value, int(epoch))
            writer.flush()
        plot_curves(history, self.png)

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _tensorboard(self):
        if self._writer is None and not self._no_tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package (setup.py)
            except ImportError:
                # a venv made before tensorboard was a requirement: the PNG and the JSON are still written
                logger.warning("no TensorBoard event files in %s: the tensorboard package is missing (run "
                               "'make install', or pip install tensorboard)", self.tensorboard_dir)
                self._no_tensorboard = True
                return None
            self._writer = SummaryWriter(log_dir=str(self.tensorboard_dir))
        return self._writer


def curve_series(history):
    """What the PNG plots, per step: ``loss`` (``{"train": [[epoch, value], ...], "valid": [...]}``), ``components``
    (the parts of the loss: response, emotion_ce, avd_*) and ``metrics`` (accuracies, ``*_acc``), both from the
    valid set (the train set when a step had no valid set)."""
    series = {}
    for step, epochs in history.items():
        order = sorted(epochs, key=int)
        loss = {split: [[int(e), epochs[e][split]["loss"]] for e in order if "loss" in epochs[e].get(split, {})]
                for split in ("train", "valid")}
        source = "valid" if any(epochs[e].get("valid") for e in order) else "train"
        names = sorted({k for e in order for k in epochs[e].get(source, {}) if k != "loss"})
        parts = {name: [[int(e), epochs[e][source][name]] for e in order if name in epochs[e].get(source, {})]
                 for name in names}
        # a component equal to the whole loss (step 1: the response loss alone) would hide behind it
        total = loss.get(source, [])
        components = {f"{source} {name}": points for name, points in parts.items()
                      if not name.endswith("_acc") and points != total}
        metrics = {f"{source} {name}": points for name, points in parts.items() if name.endswith("_acc")}
        series[step] = {"loss": {k: v for k, v in loss.items() if v}, "components": components, "metrics": metrics}
    return series


def plot_curves(history, path):
    """Draw :func:`curve_series` of ``history`` into ``path`` (PNG); returns the series drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = curve_series(history)
    steps = list(series)
    fig, axes = plt.subplots(max(len(steps), 1), 2, figsize=(10, 3.2 * max(len(steps), 1)), squeeze=False)
    for row, step in zip(axes, steps):
        loss_ax, metric_ax = row
        for split, points in series[step]["loss"].items():
            loss_ax.plot(*zip(*points), marker="o", label=f"{split} loss")
        for name, points in series[step]["components"].items():
            loss_ax.plot(*zip(*points), marker=".", linestyle="--", label=name)
        loss_ax.set_title(f"{step}: loss", fontsize=10)
        loss_ax.legend(fontsize=8)
        if series[step]["metrics"]:
            for name, points in series[step]["metrics"].items():
                metric_ax.plot(*zip(*points), marker="o", label=name)
            metric_ax.set_ylim(0, 1)
            metric_ax.set_title(f"{step}: accuracy", fontsize=10)
            metric_ax.legend(fontsize=8)
        else:
            metric_ax.set_axis_off()
            metric_ax.text(0.5, 0.5, f"{step}: no accuracy metric", ha="center", va="center", fontsize=9)
        for ax in row:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={PNG_KEY: json.dumps(series, sort_keys=True)})
    plt.close(fig)
    return series


def read_png_curves(path):
    """The series a PNG written by :func:`plot_curves` plots (its ``rellm:curves`` text chunk)."""
    from PIL import Image

    with Image.open(path) as image:
        return json.loads(image.text[PNG_KEY])
