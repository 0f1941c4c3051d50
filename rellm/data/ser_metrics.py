"""Speech emotion recognition metrics for the speech-LLM's free-text SER answers.

The answers are parsed upstream into ``ser_pred`` (an EMOTIONS label or
``"unknown"``). Here ``unknown`` is simply a wrong answer: it is a column of
the confusion matrix, never dropped, so UA/WA are over every reference utterance.

- UA (unweighted accuracy) = mean recall over the classes *present in the
  reference* (docs/evaluation.md#ser-unweighted-accuracy), i.e. scikit-learn's balanced accuracy.
- WA (weighted accuracy) = plain accuracy.
- macro-F1 over the reference classes present.
"""
import numpy as np

from rellm.data.emotions import EMOTIONS

UNKNOWN = "unknown"
PRED_LABELS = (*EMOTIONS, UNKNOWN)


def _check_labels(refs, preds):
    if len(refs) != len(preds):
        raise ValueError(f"{len(refs)} reference labels but {len(preds)} predictions")
    bad_ref = sorted({r for r in refs if r not in EMOTIONS})
    if bad_ref:
        raise ValueError(f"reference emotions {bad_ref} are not in {', '.join(EMOTIONS)}")
    bad_pred = sorted({p for p in preds if p not in PRED_LABELS})
    if bad_pred:
        raise ValueError(f"ser_pred values {bad_pred} are not in {', '.join(PRED_LABELS)}")


def confusion(refs, preds):
    """Counts ``[len(EMOTIONS), len(EMOTIONS) + 1]``: rows = reference, columns = prediction (+ unknown)."""
    _check_labels(refs, preds)
    matrix = np.zeros((len(EMOTIONS), len(PRED_LABELS)), dtype=np.int64)
    col = {label: k for k, label in enumerate(PRED_LABELS)}
    for r, p in zip(refs, preds):
        matrix[col[r], col[p]] += 1
    return matrix


def per_class_recall(matrix):
    """``{emotion: recall}`` for the reference classes present (rows with at least one utterance)."""
    out = {}
    for k, emotion in enumerate(EMOTIONS):
        n = matrix[k].sum()
        if n:
            out[emotion] = float(matrix[k, k] / n)
    return out


def unweighted_accuracy(refs, preds):
    recalls = per_class_recall(confusion(refs, preds))
    return float(np.mean(list(recalls.values()))) if recalls else float("nan")


def weighted_accuracy(refs, preds):
    _check_labels(refs, preds)
    return float(np.mean([r == p for r, p in zip(refs, preds)])) if refs else float("nan")


def macro_f1(refs, preds):
    """Mean F1 over the reference classes present; ``unknown`` answers lower recall only."""
    matrix = confusion(refs, preds)
    scores = []
    for k, _ in enumerate(EMOTIONS):
        n_ref = matrix[k].sum()
        if not n_ref:
            continue
        tp = matrix[k, k]
        n_pred = matrix[:, k].sum()
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_ref
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def ser_metrics(refs, preds):
    """All SER figures of one system: UA, WA, macro-F1, per-class recall, confusion, unknown rate."""
    refs, preds = list(refs), list(preds)
    matrix = confusion(refs, preds)
    recalls = per_class_recall(matrix)
    return {
        "ua": float(np.mean(list(recalls.values()))) if recalls else float("nan"),
        "wa": weighted_accuracy(refs, preds),
        "macro_f1": macro_f1(refs, preds),
        "per_class_recall": recalls,
        "classes_present": list(recalls),
        "unknown_rate": float(np.mean([p == UNKNOWN for p in preds])) if preds else float("nan"),
        "confusion": {"rows": list(EMOTIONS), "columns": list(PRED_LABELS), "counts": matrix.tolist()},
        "n": len(refs),
    }
