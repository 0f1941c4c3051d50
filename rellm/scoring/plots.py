"""PNG figures of a scored test set (matplotlib, Agg backend: no display needed).

- ``empathy_levels.png``: per mechanism, each system's level distribution (stacked) and mean level.
- ``confusion_matrices.png``: each SER-capable system's row-normalised confusion matrix with counts.
- ``empathy_vs_ser.png``: mean level when the system recognised the emotion vs when it did not.
- ``empathy_per_emotion.png``: mean level per reference emotion.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from rellm.systems import label as system_label  # the one table of system labels
from rellm.utils.io import atomic_path

LEVEL_COLOURS = ("#d9d9d9", "#9ecae1", "#3182bd")


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_empathy_levels(metrics, mechanisms, path):
    systems = list(metrics["systems"])
    fig, axes = plt.subplots(1, len(mechanisms), figsize=(3.6 * len(mechanisms), 3.4), squeeze=False)
    for ax, mech in zip(axes[0], mechanisms):
        bottom = np.zeros(len(systems))
        for level, colour in enumerate(LEVEL_COLOURS):
            share = np.array([metrics["systems"][s]["empathy"][mech]["distribution"][level] for s in systems])
            ax.bar(range(len(systems)), share, bottom=bottom, color=colour, label=f"level {level}")
            bottom += share
        for k, s in enumerate(systems):
            ax.text(k, 1.02, f"{metrics['systems'][s]['empathy'][mech]['mean']:.2f}", ha="center", fontsize=9)
        ax.set_xticks(range(len(systems)), [system_label(s) for s in systems], rotation=20)
        ax.set_ylim(0, 1.12)
        ax.set_title(f"{mech} (mean level above bars)", fontsize=10)
    axes[0][0].set_ylabel("share of responses")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return _save(fig, path)


def plot_confusion_matrices(metrics, path):
    systems = [s for s, m in metrics["systems"].items() if m["ser"] is not None]
    if not systems:
        return None
    # every panel names the classes on both axes: a shared y axis with labels on the first panel only made
    # matplotlib blank them on all (one tick formatter for the shared axis)
    fig, axes = plt.subplots(1, len(systems), figsize=(4.6 * len(systems), 3.9), squeeze=False)
    for ax, system in zip(axes[0], systems):
        conf = metrics["systems"][system]["ser"]["confusion"]
        counts = np.array(conf["counts"], dtype=float)
        rows = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                if counts[i, j]:
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=45, ha="right")
        ax.set_yticks(range(len(conf["rows"])), conf["rows"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{system_label(system)}: UA {metrics['systems'][system]['ser']['ua'] * 100:.1f}%", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_empathy_vs_ser(metrics, mechanisms, path):
    systems = [s for s, m in metrics["systems"].items() if m["ser"] is not None]
    if not systems:
        return None
    fig, axes = plt.subplots(1, len(mechanisms), figsize=(3.6 * len(mechanisms), 3.4), squeeze=False)
    width = 0.38
    for ax, mech in zip(axes[0], mechanisms):
        for offset, key, colour in ((-width / 2, "correct", "#31a354"), (width / 2, "wrong", "#de2d26")):
            values = [metrics["systems"][s]["empathy_by_ser"][mech][key]["mean"] for s in systems]
            ax.bar(np.arange(len(systems)) + offset, [v if v is not None else 0 for v in values], width,
                   color=colour, label=f"SER {key}")
        ax.set_xticks(range(len(systems)), [system_label(s) for s in systems], rotation=20)
        ax.set_ylim(0, 2)
        ax.set_title(f"mean {mech} level", fontsize=10)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return _save(fig, path)


def plot_empathy_per_emotion(metrics, mechanisms, path):
    systems = list(metrics["systems"])
    emotions = list(next(iter(metrics["systems"].values()))["per_emotion"])
    fig, axes = plt.subplots(1, len(mechanisms), figsize=(3.8 * len(mechanisms), 3.4), squeeze=False)
    width = 0.8 / max(1, len(systems))
    for ax, mech in zip(axes[0], mechanisms):
        for k, system in enumerate(systems):
            per = metrics["systems"][system]["per_emotion"]
            values = [per.get(e, {}).get(mech) or 0 for e in emotions]
            ax.bar(np.arange(len(emotions)) + (k - (len(systems) - 1) / 2) * width, values, width,
                   label=system_label(system))
        ax.set_xticks(range(len(emotions)), emotions, rotation=30)
        ax.set_ylim(0, 2)
        ax.set_title(f"mean {mech} level per emotion", fontsize=10)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return _save(fig, path)


def plot_all(metrics, mechanisms, output_dir):
    """Write every figure that the metrics support; returns the written paths."""
    output_dir = Path(output_dir)
    if not metrics["systems"]:
        return []
    paths = [
        plot_empathy_levels(metrics, mechanisms, output_dir / "empathy_levels.png"),
        plot_confusion_matrices(metrics, output_dir / "confusion_matrices.png"),
        plot_empathy_vs_ser(metrics, mechanisms, output_dir / "empathy_vs_ser.png"),
        plot_empathy_per_emotion(metrics, mechanisms, output_dir / "empathy_per_emotion.png"),
    ]
    return [p for p in paths if p is not None]


# name -> draw(metrics, mechanisms, path), what stage 6 draws; each on its own, so a failure loses one figure
FIGURES = {
    "empathy_levels": plot_empathy_levels,
    "confusion_matrices": lambda metrics, mechanisms, path: plot_confusion_matrices(metrics, path),
    "empathy_vs_ser": plot_empathy_vs_ser,
    "empathy_per_emotion": plot_empathy_per_emotion,
}
