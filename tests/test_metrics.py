import numpy as np
import pytest
from sklearn import metrics as skm

from pneumo_core.common.logits import sigmoid
from pneumo_core.evaluation.metrics import (
    choose_threshold,
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
)


@pytest.fixture
def scored():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(0.35 * labels + rng.normal(0.35, 0.2, 400), 0, 1)
    return labels, scores


def test_metrics_match_scikit_learn(scored):
    labels, scores = scored
    result = classification_metrics(labels, scores, 0.5)
    predicted = (scores >= 0.5).astype(int)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert result["sensitivity"] == pytest.approx(skm.recall_score(labels, predicted))
    assert result["specificity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
    assert result["precision"] == pytest.approx(skm.precision_score(labels, predicted))
    assert result["npv"] == pytest.approx(skm.precision_score(labels, predicted, pos_label=0))
    assert result["f1"] == pytest.approx(skm.f1_score(labels, predicted))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, scores))
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(labels, scores))
    assert result["brier"] == pytest.approx(skm.brier_score_loss(labels, scores))
    assert result["tp"] + result["fn"] == labels.sum()


@pytest.mark.parametrize("target", [0.9, 0.95, 0.97, 1.0])
def test_threshold_is_the_highest_reaching_the_target_sensitivity(scored, target):
    labels, scores = scored
    threshold = choose_threshold(labels, scores, target)
    assert classification_metrics(labels, scores, threshold)["sensitivity"] >= target
    higher = np.min(scores[scores > threshold]) if np.any(scores > threshold) else None
    if higher is not None:
        assert classification_metrics(labels, scores, higher)["sensitivity"] < target


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < sigmoid(true_logits)).astype(int)
    overconfident = true_logits * 3.0  # a model three times too sure of itself
    assert fit_temperature(labels, overconfident) == pytest.approx(3.0, rel=0.08)


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence():
    rng = np.random.default_rng(1)
    probabilities = rng.random(50000)
    labels = (rng.random(50000) < probabilities).astype(int)
    assert expected_calibration_error(labels, probabilities) < 0.01
    assert expected_calibration_error(labels, np.round(probabilities)) > 0.2


def test_patient_intervals_contain_the_point_estimate_and_widen_with_clustering(scored):
    from scipy.stats import beta

    from pneumo_core.evaluation.metrics import CI_METRICS, patient_intervals

    labels, scores = scored
    point = classification_metrics(labels, scores, 0.5)
    intervals = patient_intervals(labels, scores, 0.5, np.arange(len(labels)), resamples=200)
    assert set(intervals) == set(CI_METRICS)
    for name, (low, high) in intervals.items():
        assert low <= point[name] <= high and high - low < 0.2
    # one film per patient: a proportion's interval is exactly Clopper-Pearson's
    hits, n = point["tp"], point["tp"] + point["fn"]
    assert intervals["sensitivity"] == pytest.approx((beta.ppf(0.025, hits, n - hits + 1), beta.ppf(0.975, hits + 1, n - hits)))
    # the same films as patients of four: a quarter of the evidence, wider intervals
    grouped = patient_intervals(labels, scores, 0.5, np.arange(len(labels)) // 4, resamples=200)
    assert np.diff(grouped["accuracy"])[0] > np.diff(intervals["accuracy"])[0]
    # every pneumonia film called: the exact interval reaches 1 and its lower end is Clopper-Pearson's 0.025^(1/8),
    # far below 1 (a percentile bootstrap gives [1, 1]: 8 of 8 films "prove" sensitivity 1)
    low, high = patient_intervals(np.ones(8), np.ones(8), 0.5, np.arange(8), resamples=10)["sensitivity"]
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 8)) and low < 0.64


def test_reliability_curve_of_a_calibrated_model_is_near_the_diagonal():
    from pneumo_core.evaluation.metrics import reliability_curve

    rng = np.random.default_rng(2)
    probabilities = rng.random(20000)
    labels = (rng.random(20000) < probabilities).astype(int)
    predicted, observed, counts = reliability_curve(labels, probabilities)
    assert np.abs(predicted - observed).max() < 0.05 and counts.sum() == 20000
