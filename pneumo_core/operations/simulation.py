"""What a site profile's rules give on the site's *next* films, simulated on its own sample.

The sample is split by patient many times into a "fit" part and a "next films" part (stratified by class, with
:class:`~sklearn.model_selection.StratifiedGroupKFold`: by default the next part is one fold of three, a third of the
patients, so that the fits see most of the sample, as the real fit sees all of it).
On the fit part the temperature, the rule's threshold and the referral band are fitted as :func:`calibrate
<pneumo_core.operations.calibration.calibrate>` fits them on the whole sample; the next part's films are then called
at that operating point. Over the splits this gives, per rule, how often the next films' sensitivity falls below the
rule's target, and the range (5th to 95th percentile) that held the next films' sensitivity, specificity and
accuracy, and, for the referral band, the share referred and the sensitivity and specificity of the decided films.

The fits see two thirds of the sample, so their thresholds are noisier than one fitted on all of it (and a rule
that bounds over patients is more cautious on fewer patients), and each next part is a third of the sample, so its
metrics are noisier than those of a site's next few hundred films: the ranges are wide rather than narrow, which is
the side to err on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pneumo_core.common.decisions import decided_metrics
from pneumo_core.common.logits import sigmoid
from pneumo_core.operations.rules import ReferralRule, Rule

SPLITS = 200
FOLDS = 3
"""The next part is one fold of this many (``folds=2``: halves)."""
RANGE = (0.05, 0.95)
"""The percentiles of the simulated next-film metrics reported as their expected range."""
DECIDED_GOALS = {"sensitivity": 0.98, "specificity": 0.95}
"""What the decided (not referred) films should reach: the share of splits below each is reported."""


def simulate_next_films(
    labels: np.ndarray,
    logits: np.ndarray,
    patients: np.ndarray,
    rule: Rule,
    band: ReferralRule,
    splits: int = SPLITS,
    folds: int = FOLDS,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The simulation of the module docstring for one rule and band; ``None`` when a class has fewer patients than
    ``folds`` (the sample cannot be split)."""
    from sklearn.model_selection import StratifiedGroupKFold

    from pneumo_core.evaluation.metrics import fit_temperature

    labels = np.asarray(labels).astype(int)
    logits = np.asarray(logits, dtype=float)
    patients = np.asarray(patients)
    if min(len(np.unique(patients[labels == c])) for c in (0, 1)) < folds:
        return None
    rows = []
    for split in range(splits):
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed + split)
        fit, next_ = next(splitter.split(logits, labels, patients))
        if len(np.unique(labels[fit])) < 2 or len(np.unique(labels[next_])) < 2:
            continue
        temperature = fit_temperature(labels[fit], logits[fit])
        fitted = sigmoid(logits[fit] / temperature)
        threshold = rule.threshold(labels[fit], fitted, patients[fit])
        low, high = band.band(labels[fit], fitted, threshold)
        rows.append(next_film_metrics(labels[next_], sigmoid(logits[next_] / temperature), threshold, low, high))
    return {**summarise(rows, rule, band), "next_share": 1 / folds}


def next_film_metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float, low: float, high: float) -> dict:
    """The binary calls' accuracy, sensitivity and specificity at ``threshold``, and the share referred by the band
    ``[low, high)`` with the decided films' sensitivity and specificity (NaN when a class has no decided film)."""
    called = probabilities >= threshold
    pneumonia, normal = labels == 1, labels == 0
    decided = decided_metrics(labels, probabilities, low, high)
    return {
        "accuracy": float(np.mean(called == pneumonia)),
        "sensitivity": float(called[pneumonia].mean()),
        "specificity": float((~called[normal]).mean()),
        **{key: decided[key] for key in ("referred", "decided_sensitivity", "decided_specificity")},
    }


def summarise(rows: list[dict], rule: Rule, band: ReferralRule) -> dict[str, Any]:
    """Means, expected ranges and shortfall shares over the simulated splits."""
    table = {key: np.asarray([row[key] for row in rows], dtype=float) for key in rows[0]}

    def spread(values: np.ndarray) -> dict[str, Any]:
        values = values[np.isfinite(values)]
        return {"mean": float(values.mean()), "range": [float(q) for q in np.quantile(values, RANGE)]}

    summary: dict[str, Any] = {
        "splits": len(rows),
        "rule": str(rule),
        "band": str(band),
        **{key: spread(table[key]) for key in ("accuracy", "sensitivity", "specificity")},
        "referral": {key: spread(table[key]) for key in ("referred", "decided_sensitivity", "decided_specificity")},
        "decided_goals": DECIDED_GOALS,
        "decided_below_goal": {
            key: float(np.mean(np.nan_to_num(table[f"decided_{key}"], nan=1.0) < goal)) for key, goal in DECIDED_GOALS.items()
        },
    }
    if rule.target_sensitivity is not None:
        summary["target_sensitivity"] = rule.target_sensitivity
        summary["below_target"] = float(np.mean(table["sensitivity"] < rule.target_sensitivity))
    return summary


def describe_next_films(summary: dict[str, Any]) -> str:
    """Two sentences for a :func:`simulate_next_films` summary."""
    ranges = ", ".join(
        f"{key} {summary[key]['range'][0]:.3f}-{summary[key]['range'][1]:.3f}" for key in ("sensitivity", "specificity")
    )
    text = f"Expected on the site's next films (90% of {summary['splits']} simulated splits of the sample by patient): {ranges}"
    if "below_target" in summary:
        text += f"; sensitivity below {summary['target_sensitivity']:.2f} in {summary['below_target']:.0%} of splits"
    referral = summary["referral"]
    return (
        f"{text}. With the referral band: {referral['referred']['mean']:.0%} referred on average, decided films' "
        f"sensitivity {referral['decided_sensitivity']['mean']:.3f}, specificity {referral['decided_specificity']['mean']:.3f}."
    )
