"""Metric functions against values computed by hand."""

import math

import pytest

from training.evaluate import metrics

GOLD = ["A", "A", "B", "B"]
PRED = ["A", "B", "B", "C"]


def test_accuracy():
    assert metrics.accuracy(GOLD, PRED) == 0.5


def test_per_class_precision_recall_f1():
    scores = metrics.per_class(GOLD, PRED)
    assert list(scores) == ["A", "B", "C"]
    assert scores["A"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                           "support": 2}
    assert scores["B"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["C"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_macro_f1_is_over_the_union_of_gold_and_predicted_classes():
    # (2/3 + 1/2 + 0) / 3 classes; over gold classes only it would be 7/12.
    assert metrics.macro_f1(GOLD, PRED) == pytest.approx(7 / 18)


def test_macro_f1_perfect_and_all_wrong():
    assert metrics.macro_f1(["A", "B"], ["A", "B"]) == 1.0
    assert metrics.macro_f1(["A", "A"], ["B", "B"]) == 0.0


def test_confusion_matrix_rows_gold_columns_predicted():
    matrix = metrics.confusion_matrix(GOLD, PRED, ["A", "B", "C"])
    assert matrix == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]


def test_class_union_keeps_the_given_order_first():
    assert metrics.class_union(["z", "b"], ["error"], order=("a", "b", "z")) == ["b", "z", "error"]


def test_mae_and_pearson():
    assert metrics.mae([10, 20, 30], [12, 18, 33]) == pytest.approx(7 / 3)
    assert metrics.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / math.sqrt(228))
    assert metrics.pearson([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1.0)
    assert metrics.pearson([5, 5, 5], [1, 2, 3]) is None


@pytest.mark.parametrize("q, expected", [(0, 1.0), (50, 2.5), (95, 3.85), (100, 4.0)])
def test_percentile_interpolates_linearly(q, expected):
    assert metrics.percentile([4, 1, 3, 2], q) == pytest.approx(expected)


def test_cohen_kappa():
    # p_o = 3/4; p_e = (2*1 + 2*3) / 16 = 1/2; kappa = (3/4 - 1/2) / (1/2)
    assert metrics.cohen_kappa(["x", "x", "y", "y"], ["x", "y", "y", "y"]) == pytest.approx(0.5)
    assert metrics.cohen_kappa(["x", "x"], ["x", "x"]) == 1.0
    assert metrics.cohen_kappa(["x", "y"], ["y", "x"]) == pytest.approx(-1.0)


def test_agreement_needs_same_verdict_and_scores_within_tolerance():
    verdicts_a, verdicts_b = ["A", "A", "B"], ["A", "A", "A"]
    scores_a, scores_b = [50, 80, 40], [55, 86, 40]
    assert metrics.agreement(verdicts_a, verdicts_b, scores_a, scores_b) == pytest.approx(1 / 3)


def test_set_micro_f1():
    result = metrics.set_micro_f1([{"a", "b"}, {"c"}], [{"a"}, {"c", "d"}])
    assert result == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                      "f1": pytest.approx(2 / 3)}
    assert metrics.set_micro_f1([set()], [set()])["f1"] == 0.0


def test_calibration_bins_and_ece():
    confidences, correct = [0.95, 0.95, 0.55, 0.55], [True, False, True, True]
    bins = metrics.calibration_bins(confidences, correct)
    assert [(b["low"], b["count"], b["accuracy"]) for b in bins] == [(0.5, 2, 1.0), (0.9, 2, 0.5)]
    assert metrics.expected_calibration_error(confidences, correct) == pytest.approx(0.45)
    assert metrics.calibration_bins([1.0], [True])[0]["low"] == 0.9


@pytest.mark.parametrize("func", [metrics.accuracy, metrics.mae, metrics.cohen_kappa])
def test_length_mismatch_and_empty_input_raise(func):
    with pytest.raises(ValueError, match="length mismatch"):
        func([1, 2], [1])
    with pytest.raises(ValueError, match="no items"):
        func([], [])
