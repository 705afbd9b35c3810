"""Threshold rules and referral bands: how a site's operating point is chosen on its labelled sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pneumo_core.common.logits import log_odds, sigmoid
from pneumo_core.operations.bounds import CONFIDENCE, patient_lower_bounds
from pneumo_core.store.profiles import ProfileError

DEFAULT_RULE = "sensitivity-bound:0.97"
DEFAULT_BAND = "band:0.99/0.95"
RULE_KINDS = ("sensitivity-bound", "sensitivity", "cost", "youden")


@dataclass(frozen=True)
class Rule:
    """How the threshold is chosen on the site's labelled sample.

    - ``sensitivity-bound:S`` (the default): the highest threshold at which the one-sided 95% lower confidence bound
      of the sample's sensitivity, taken over patients (:func:`~pneumo_core.operations.bounds.patient_lower_bounds`),
      is ≥ S: the target holds on the site's next films with high probability, not only on this sample. When no
      threshold reaches the bound, every pneumonia film of the sample is called (the lowest pneumonia score);
    - ``sensitivity:S``: the best specificity whose sensitivity on the sample itself is ≥ S (optimistic: on a
      later collection it delivered 0.88 for S = 0.97);
    - ``cost:R``: the threshold minimising R · missed pneumonia + false alarms (a miss costs R false alarms);
    - ``youden``: the threshold maximising sensitivity + specificity − 1.

    Every threshold between the chosen one and the highest normal film below it makes the same calls on the sample;
    each rule takes their centre in log-odds, so that neither film sits on the boundary.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        kind, _, value = text.strip().lower().partition(":")
        try:
            if kind in ("sensitivity", "sensitivity-bound") and 0.5 <= float(value) <= 1.0:
                return cls(kind, float(value))
            if kind == "cost" and float(value) > 0:
                return cls(kind, float(value))
            if kind == "youden" and not value:
                return cls(kind)
        except ValueError:
            pass
        raise ProfileError(
            f"Unknown threshold rule {text!r}: use sensitivity-bound:S or sensitivity:S (0.5-1), cost:R (R > 0) or youden."
        )

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    @property
    def target_sensitivity(self) -> float | None:
        """The sensitivity the rule aims at on the site's next films (None for cost and Youden)."""
        return self.value if self.kind in ("sensitivity", "sensitivity-bound") else None

    def describe(self) -> str:
        if self.kind == "sensitivity-bound":
            return (
                f"best site-sample specificity with the {CONFIDENCE:.0%} lower confidence bound of sensitivity "
                f"(patient bootstrap) >= {self.value:.2f}, the threshold centred (log-odds) among those giving it"
            )
        if self.kind == "sensitivity":
            return (
                f"best site-sample specificity with sensitivity >= {self.value:.2f}, the threshold centred (log-odds) "
                "among those giving it"
            )
        if self.kind == "cost":
            return f"threshold minimising {self.value:g} x missed pneumonia + false alarms on the site sample"
        return "threshold maximising sensitivity + specificity - 1 (Youden) on the site sample"

    def threshold(self, labels: np.ndarray, probabilities: np.ndarray, patients: np.ndarray | None = None) -> float:
        """The chosen threshold (a film at it is called PNEUMONIA); ``patients`` (one per film, default: each film
        its own) group the films for the ``sensitivity-bound`` rule."""
        labels = np.asarray(labels).astype(int)
        probabilities = np.asarray(probabilities, dtype=float)
        if len(labels) == 0 or labels.min() == labels.max():
            raise ProfileError("The sample needs films of both classes (NORMAL and PNEUMONIA).")
        if self.kind == "sensitivity-bound":
            patients = np.arange(len(labels)) if patients is None else np.asarray(patients)
            highest = highest_bounded_threshold(probabilities[labels == 1], patients[labels == 1], self.value)
            return _centred_below(highest, probabilities[labels == 0])
        if self.kind == "sensitivity":
            from pneumo_core.evaluation.metrics import choose_threshold

            return _centred_below(choose_threshold(labels, probabilities, self.value), probabilities[labels == 0])
        candidates = np.unique(probabilities)
        called = probabilities[None, :] >= candidates[:, None]  # (threshold, film)
        missed = ((~called) & (labels == 1)).sum(axis=1)
        false_alarms = (called & (labels == 0)).sum(axis=1)
        if self.kind == "cost":
            loss = self.value * missed + false_alarms
        else:
            loss = -((labels.sum() - missed) / labels.sum() + ((labels == 0).sum() - false_alarms) / (labels == 0).sum())
        lowest = float(candidates[int(np.argmin(loss))])  # ties: the lowest such threshold (fewest misses)
        return _centred_below(lowest, probabilities[labels == 0])


def highest_bounded_threshold(pneumonia: np.ndarray, patients: np.ndarray, target: float) -> float:
    """The highest pneumonia film's probability at which the patient-bootstrap lower bound of the share of pneumonia
    films called (scoring at or above it) is ≥ ``target``; the lowest pneumonia probability when none is."""
    candidates = np.unique(pneumonia)
    bounds = patient_lower_bounds(pneumonia[:, None] >= candidates[None, :], patients)
    reaching = candidates[bounds >= target]
    return float(reaching.max() if reaching.size else candidates.min())


def sensitivity_lower_bound(labels: np.ndarray, probabilities: np.ndarray, patients: np.ndarray, threshold: float) -> float:
    """The patient-bootstrap lower bound of the sample's sensitivity at ``threshold``."""
    pneumonia = np.asarray(labels) == 1
    called = np.asarray(probabilities)[pneumonia] >= threshold
    return float(patient_lower_bounds(called[:, None], np.asarray(patients)[pneumonia])[0])


@dataclass(frozen=True)
class ReferralRule:
    """``band:S/P``: the referral band ``[low, high)`` around the threshold. Below ``low`` a film is called NORMAL,
    from ``high`` PNEUMONIA, in between it is referred (uncertain, needs a radiologist).

    ``low`` is the ``sensitivity:S`` rule's threshold (the NORMAL calls miss at most a share 1 − S of the sample's
    pneumonia films) and ``high`` the lowest threshold at which the sample's specificity is ≥ P (the PNEUMONIA calls
    take at most a share 1 − P of its normal films), centred in log-odds like the rules; the band always holds the
    threshold, so the decision never contradicts the binary label. ``band:none`` refers nothing.
    """

    sensitivity: float | None
    specificity: float | None

    @classmethod
    def parse(cls, text: str) -> ReferralRule:
        kind, _, value = text.strip().lower().partition(":")
        if kind == "band" and value == "none":
            return cls(None, None)
        try:
            sensitivity, specificity = (float(part) for part in value.split("/"))
            if kind == "band" and 0.5 <= sensitivity < 1 and 0.5 <= specificity < 1:
                return cls(sensitivity, specificity)
        except ValueError:
            pass
        raise ProfileError(f"Unknown referral band {text!r}: use band:S/P (each in 0.5-1, e.g. {DEFAULT_BAND}) or band:none.")

    def __str__(self) -> str:
        return "band:none" if self.sensitivity is None else f"band:{self.sensitivity:g}/{self.specificity:g}"

    def describe(self) -> str:
        if self.sensitivity is None:
            return "no referral band: every film gets the binary call"
        return (
            f"NORMAL below the threshold keeping site-sample sensitivity >= {self.sensitivity:.2f}, PNEUMONIA from the "
            f"threshold keeping site-sample specificity >= {self.specificity:.2f}, referred in between"
        )

    def band(self, labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> tuple[float, float]:
        """``(low, high)`` with ``low <= threshold <= high``."""
        if self.sensitivity is None:
            return threshold, threshold
        labels = np.asarray(labels).astype(int)
        probabilities = np.asarray(probabilities, dtype=float)
        low = Rule("sensitivity", self.sensitivity).threshold(labels, probabilities)
        normal = np.sort(probabilities[labels == 0])[::-1]
        allowed = int(np.floor((1 - self.specificity) * len(normal) + 1e-9))  # normal films that may be called
        high = _centred_above(float(normal[allowed]), probabilities[labels == 1]) if allowed < len(normal) else 0.0
        return min(low, threshold), max(high, threshold)


def _centred_below(threshold: float, normal_probabilities: np.ndarray) -> float:
    """Midway in log-odds between ``threshold`` and the highest normal film's probability below it (``threshold``
    itself when none is below): every threshold in that range calls the same normal films pneumonia."""
    below = normal_probabilities[normal_probabilities < threshold]
    if not below.size:
        return threshold
    return _midway(below.max(), threshold)


def _centred_above(normal: float, pneumonia_probabilities: np.ndarray) -> float:
    """Just above the normal film at ``normal``: midway in log-odds to the lowest pneumonia film above it (or to the
    odds e times higher when none is)."""
    above = pneumonia_probabilities[pneumonia_probabilities > normal]
    upper = above.min() if above.size else float(sigmoid(log_odds(min(normal, 1 - 1e-9)) + 1))
    return _midway(normal, upper)


def _midway(low: float, high: float) -> float:
    low_z, high_z = log_odds(np.clip([low, high], 1e-12, 1 - 1e-12))
    return float(sigmoid((low_z + high_z) / 2))
