"""Decisions with a referral band: the decided films' metrics and the risk–coverage curve, on known answers."""

import numpy as np
import pytest

from pneumo_core.common.decisions import decide, decided_metrics, risk_coverage


def test_decided_metrics_count_what_each_edge_decides():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.5, 0.9, 0.15, 0.5, 0.8, 0.95])
    metrics = decided_metrics(labels, probabilities, low=0.3, high=0.7)
    # NORMAL: 0.1, 0.2 (normal) and 0.15 (pneumonia, missed); PNEUMONIA: 0.9 (normal, false alarm), 0.8, 0.95; referred 0.5 x2
    assert (metrics["normal"], metrics["refer"], metrics["pneumonia"]) == (3, 2, 3) and metrics["referred"] == 0.25
    assert metrics["decided_sensitivity"] == pytest.approx(2 / 3) and metrics["decided_specificity"] == pytest.approx(2 / 3)
    assert metrics["decided_accuracy"] == pytest.approx(4 / 6)
    assert [decide(p, 0.3, 0.7) for p in (0.29, 0.3, 0.69, 0.7)] == ["NORMAL", "REFER", "REFER", "PNEUMONIA"]
    nothing_decided = decided_metrics(labels, probabilities, low=0.0, high=1.01)
    assert nothing_decided["referred"] == 1.0 and np.isnan(nothing_decided["decided_sensitivity"])


def test_risk_falls_as_coverage_falls_and_the_narrowest_band_decides_everything():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probabilities = 1 / (1 + np.exp(-(rng.normal(0, 1, 400) + 2.5 * (labels - 0.5))))
    curve = risk_coverage(labels, probabilities, threshold=0.5)
    assert curve["coverage"][0] == 1.0 and curve["risk"][0] == pytest.approx(np.mean((probabilities >= 0.5) != labels))
    assert all(a >= b for a, b in zip(curve["coverage"], curve["coverage"][1:]))  # wider bands decide fewer films
    assert curve["risk"][20] < curve["risk"][0] / 2  # odds within e^2 of the threshold's referred: far fewer errors
