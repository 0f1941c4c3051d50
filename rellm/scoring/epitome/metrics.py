"""Classifier quality measures for EPITOME: level accuracy, macro-F1 and rationale IOU-F1."""
import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from rellm.scoring.epitome.data import LEVELS


def token_spans(labels):
    """Contiguous runs of 1 in a 0/1 sequence as half-open ``(start, end)`` token spans."""
    spans, start = [], None
    for k, value in enumerate(list(labels) + [0]):
        if value and start is None:
            start = k
        elif not value and start is not None:
            spans.append((start, k))
            start = None
    return spans


def span_iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def iou_f1(predicted, gold, threshold=0.5):
    """Rationale IOU-F1 (DeYoung et al. 2020, ERASER), micro-averaged over examples.

    ``predicted``/``gold``: per example, a 0/1 token sequence over the response
    tokens. A predicted span counts as correct when its IOU with some gold span
    is at least ``threshold``; precision = correct predicted spans / predicted
    spans, recall = gold spans matched by a prediction / gold spans.
    """
    n_pred = n_gold = pred_hit = gold_hit = 0
    for pred_labels, gold_labels in zip(predicted, gold, strict=True):
        pred_spans, gold_spans = token_spans(pred_labels), token_spans(gold_labels)
        n_pred += len(pred_spans)
        n_gold += len(gold_spans)
        pred_hit += sum(any(span_iou(p, g) >= threshold for g in gold_spans) for p in pred_spans)
        gold_hit += sum(any(span_iou(p, g) >= threshold for p in pred_spans) for g in gold_spans)
    precision = pred_hit / n_pred if n_pred else 0.0
    recall = gold_hit / n_gold if n_gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def token_f1(predicted, gold):
    """Token-level F1 of the rationale tag over all response tokens."""
    p = np.concatenate([np.asarray(x, dtype=int) for x in predicted]) if predicted else np.zeros(0, int)
    g = np.concatenate([np.asarray(x, dtype=int) for x in gold]) if gold else np.zeros(0, int)
    return float(f1_score(g, p, zero_division=0)) if len(g) else 0.0


def classifier_metrics(true_levels, pred_levels, pred_rationales=None, gold_rationales=None):
    """``{"accuracy", "macro_f1", "per_level_f1", "iou_f1", "token_f1", "n"}`` for one mechanism."""
    true_levels = np.asarray(true_levels)
    pred_levels = np.asarray(pred_levels)
    out = {
        "accuracy": float(accuracy_score(true_levels, pred_levels)),
        "macro_f1": float(f1_score(true_levels, pred_levels, labels=list(LEVELS), average="macro", zero_division=0)),
        "per_level_f1": [float(x) for x in f1_score(true_levels, pred_levels, labels=list(LEVELS),
                                                     average=None, zero_division=0)],
        "n": len(true_levels),
    }
    if pred_rationales is not None:
        out["iou_f1"] = float(iou_f1(pred_rationales, gold_rationales))
        out["token_f1"] = token_f1(pred_rationales, gold_rationales)
    return out
