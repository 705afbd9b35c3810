"""The whole fit of a site's operating point from its films' logits: the one procedure every entry point serves.

:func:`fit_operating_point` takes the sample's logits and true labels and returns the temperature (negative
log-likelihood of sigmoid(logit / T)), the threshold and the referral band (:mod:`pneumo_core.operating_point.rules`,
placed on the logits), their promise about the next films (:mod:`pneumo_core.operating_point.promises`) and what the
sample cannot support. ``calibrate`` (on a folder or on score records), the Metrics page and the simulation of
:mod:`pneumo_core.operating_point.simulation` all call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pneumo_core.common.confidence import CONFIDENCE
from pneumo_core.common.logits import sigmoid
from pneumo_core.operating_point.promises import Promise, class_designs, promise
from pneumo_core.operating_point.rules import ReferralRule, Rule, shortfalls


@dataclass(frozen=True)
class OperatingPoint:
    """A fitted operating point: edges on the logit scale, the temperature, the promise and the shortfalls."""

    threshold_logit: float
    low_logit: float
    high_logit: float
    temperature: float
    promise: Promise
    shortfalls: tuple[str, ...]
    designs: tuple[float, float] = (1.0, 1.0)  # the NORMAL and PNEUMONIA films' design effects

    @property
    def threshold(self) -> float:
        """The threshold on the calibrated probability sigmoid(logit / temperature)."""
        return float(sigmoid(self.threshold_logit / self.temperature))

    @property
    def band(self) -> tuple[float, float]:
        """The band ``[low, high)`` on the calibrated probability."""
        return float(sigmoid(self.low_logit / self.temperature)), float(sigmoid(self.high_logit / self.temperature))

    def as_json(self) -> dict:
        """The operating point as ``calibrate --scores --json`` prints it."""
        return {
            "threshold": self.threshold,
            "temperature": self.temperature,
            "referral_band": list(self.band),
            "promise": self.promise.figures(),
            "next_films": self.promise.next_films,
            "confidence": self.promise.confidence,
        }


def fit_operating_point(
    labels: np.ndarray,
    logits: np.ndarray,
    rule: Rule,
    band_rule: ReferralRule,
    next_films: int | None = None,
    confidence: float = CONFIDENCE,
    patients: np.ndarray | None = None,
    for_simulation: bool = False,
) -> OperatingPoint:
    """Fit on ``logits`` with true ``labels`` (1 PNEUMONIA); ``next_films`` (default: the sample's size) is how many
    next films the promise is about; ``patients`` (one id per film; default: each film its own) set each class's
    design effect. ``for_simulation`` skips what changes no call and no promise: the temperature (kept at 1: it
    rescales the logits and the edges alike) and the shortfall messages."""
    from pneumo_core.evaluation.metrics import fit_temperature

    labels = np.asarray(labels).astype(int)
    logits = np.asarray(logits, dtype=float)
    designs = class_designs(labels, logits, patients)
    threshold = rule.fit(labels, logits, next_films, confidence, designs)
    low, high = band_rule.fit(labels, logits, threshold.score, next_films, confidence, designs)
    return OperatingPoint(
        threshold_logit=threshold.score,
        low_logit=low.score,
        high_logit=high.score,
        temperature=1.0 if for_simulation else fit_temperature(labels, logits),
        promise=promise(labels, logits, threshold.score, low.score, high.score, next_films, confidence, designs),
        shortfalls=() if for_simulation else tuple(shortfalls(labels, rule, band_rule, next_films, confidence, designs)),
        designs=designs,
    )
