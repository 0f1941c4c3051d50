"""Rationale IOU-F1 on hand-made spans; level metrics agree with scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from rellm.scoring.epitome.metrics import classifier_metrics, iou_f1, span_iou, token_f1, token_spans


def test_token_spans():
    assert token_spans([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert token_spans([1, 1, 1]) == [(0, 3)]
    assert token_spans([0, 0]) == []


def test_span_iou():
    assert span_iou((0, 4), (2, 6)) == pytest.approx(2 / 6)
    assert span_iou((0, 4), (0, 4)) == 1.0
    assert span_iou((0, 2), (3, 5)) == 0.0


def test_iou_f1_hand_made():
    gold = [[0, 1, 1, 1, 0, 0], [1, 1, 0, 0, 1, 1]]
    # example 1: one predicted span overlapping 2/3 of the gold span (IOU 0.67 >= 0.5: a match)
    # example 2: predicts only the first gold span exactly, plus a wrong one-token span
    pred = [[0, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0]]
    # predicted spans: (1,3) hit, (0,2) hit, (3,4) miss -> precision 2/3
    # gold spans: (1,4) hit, (0,2) hit, (4,6) miss -> recall 2/3
    assert iou_f1(pred, gold) == pytest.approx(2 / 3)
    # an overlap below the threshold is no match
    assert iou_f1([[1, 0, 0, 0]], [[1, 1, 1, 0]]) == 0.0
    assert iou_f1([[0, 0]], [[0, 0]]) == 0.0


def test_token_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    pred = [list(rng.integers(0, 2, size=n)) for n in (5, 9, 3)]
    gold = [list(rng.integers(0, 2, size=n)) for n in (5, 9, 3)]
    assert token_f1(pred, gold) == pytest.approx(f1_score(np.concatenate(gold), np.concatenate(pred)))


def test_level_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 3, size=300), rng.integers(0, 3, size=300)
    m = classifier_metrics(y, p)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["n"] == 300 and len(m["per_level_f1"]) == 3
