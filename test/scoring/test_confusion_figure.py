"""The confusion-matrix figure names the classes on both axes of every panel."""
import random

from rellm.data.emotions import EMOTIONS
from rellm.data.ser_metrics import PRED_LABELS, ser_metrics
from rellm.scoring import plots


def _metrics(systems, n=60, seed=0):
    rng = random.Random(seed)
    refs = [EMOTIONS[k % len(EMOTIONS)] for k in range(n)]
    out = {"systems": {"text_only": {"ser": None}}}  # a system without SER answers gets no panel
    for system in systems:
        preds = [r if rng.random() < 0.6 else rng.choice(PRED_LABELS) for r in refs]
        out["systems"][system] = {"ser": ser_metrics(refs, preds)}
    return out


def test_every_panel_names_the_reference_and_predicted_classes(tmp_path, monkeypatch):
    drawn = []
    save = plots._save

    def keep(fig, path):  # read the figure as it is saved
        fig.canvas.draw()
        drawn.append([([t.get_text() for t in ax.get_yticklabels() if t.get_visible()],
                       [t.get_text() for t in ax.get_xticklabels() if t.get_visible()],
                       ax.get_ylabel(), ax.get_title()) for ax in fig.axes])
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    metrics = _metrics(["blsp_emo", "rellm"])
    path = plots.plot_confusion_matrices(metrics, tmp_path / "confusion_matrices.png")
    assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
    (panels,) = drawn
    assert [title.split(":")[0] for *_, title in panels] == [plots.system_label(s) for s in ("blsp_emo", "rellm")]
    for y_labels, x_labels, y_title, _ in panels:
        assert y_labels == list(EMOTIONS)  # the reference classes, in their canonical order
        assert x_labels == list(PRED_LABELS)  # the predictions, with "unknown" (an unparsed answer)
        assert y_title == "reference"
