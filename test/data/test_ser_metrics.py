"""SER metrics agree with scikit-learn on random inputs; "unknown" answers count as wrong."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from rellm.data.emotions import EMOTIONS
from rellm.data.ser_metrics import (
    PRED_LABELS,
    confusion,
    macro_f1,
    ser_metrics,
    unweighted_accuracy,
    weighted_accuracy,
)

# scikit-learn warns when a prediction (e.g. "unknown") is no reference class: that is the case under test
pytestmark = pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")


def random_labels(seed, n=200, classes=EMOTIONS, unknown_rate=0.1):
    rng = np.random.default_rng(seed)
    refs = list(rng.choice(classes, size=n))
    preds = [r if rng.random() < 0.5 else rng.choice(PRED_LABELS) for r in refs]
    preds = ["unknown" if rng.random() < unknown_rate else p for p in preds]
    return refs, preds


@pytest.mark.parametrize("seed", range(5))
def test_ua_wa_f1_confusion_match_sklearn(seed):
    refs, preds = random_labels(seed)
    present = [e for e in EMOTIONS if e in refs]
    assert unweighted_accuracy(refs, preds) == pytest.approx(balanced_accuracy_score(refs, preds))
    assert weighted_accuracy(refs, preds) == pytest.approx(accuracy_score(refs, preds))
    assert macro_f1(refs, preds) == pytest.approx(f1_score(refs, preds, labels=present, average="macro"))
    expected = confusion_matrix(refs, preds, labels=list(PRED_LABELS))[: len(EMOTIONS)]
    np.testing.assert_array_equal(confusion(refs, preds), expected)


def test_ua_averages_only_the_classes_present_in_the_reference():
    # four classes in the reference (no surprise); a "surprise" prediction is still counted as wrong
    refs, preds = random_labels(7, classes=("neutral", "happy", "angry", "sad"))
    m = ser_metrics(refs, preds)
    assert m["classes_present"] == ["neutral", "happy", "angry", "sad"]
    assert m["ua"] == pytest.approx(balanced_accuracy_score(refs, preds))
    assert m["macro_f1"] == pytest.approx(
        f1_score(refs, preds, labels=["neutral", "happy", "angry", "sad"], average="macro"))


def test_hand_made_example_with_unknown_answers():
    refs = ["happy", "happy", "sad", "sad", "angry"]
    preds = ["happy", "unknown", "sad", "happy", "unknown"]
    m = ser_metrics(refs, preds)
    # recalls: happy 1/2, sad 1/2, angry 0/1 -> UA 1/3; WA 2/5
    assert m["ua"] == pytest.approx(1 / 3)
    assert m["wa"] == pytest.approx(0.4)
    assert m["unknown_rate"] == pytest.approx(0.4)
    assert m["confusion"]["counts"][2][5] == 1  # angry -> unknown
    assert m["n"] == 5


def test_labels_outside_the_taxonomy_are_an_error():
    with pytest.raises(ValueError, match="not in neutral"):
        ser_metrics(["happy"], ["excited"])
    with pytest.raises(ValueError, match="reference"):
        ser_metrics(["frustrated"], ["happy"])
