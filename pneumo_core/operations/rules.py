"""Threshold rules: how a site's operating point is chosen on its labelled sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pneumo_core.common.logits import log_odds, sigmoid
from pneumo_core.store.profiles import ProfileError

DEFAULT_RULE = "sensitivity:0.97"


@dataclass(frozen=True)
class Rule:
    """How the threshold is chosen on the site's labelled sample.

    - ``sensitivity:S``: the best specificity whose sensitivity on the sample is ≥ S (S = 0.97 leaves a
      margin of about one binomial standard deviation above a 0.95 floor for a sample of ~140 pneumonia
      films). Every threshold between the highest one meeting the floor and the highest normal film below
      it gives that specificity; the rule takes their centre in log-odds, so that neither the pneumonia
      film at the floor nor that normal film sits on the boundary (the highest threshold itself would give
      up sensitivity on the site's next films for no specificity on this sample);
    - ``cost:R``: the threshold minimising R · missed pneumonia + false alarms (a miss costs R false alarms);
    - ``youden``: the threshold maximising sensitivity + specificity − 1.

    These two are centred the same way: below the lowest minimising threshold (a film's probability) the next film
    is a normal one (passing a pneumonia film would lower the loss), so every threshold between that normal film and
    it makes the same calls, and the rule takes their centre in log-odds.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        kind, _, value = text.strip().lower().partition(":")
        try:
            if kind == "sensitivity" and 0.5 <= float(value) <= 1.0:
                return cls(kind, float(value))
            if kind == "cost" and float(value) > 0:
                return cls(kind, float(value))
            if kind == "youden" and not value:
                return cls(kind)
        except ValueError:
            pass
        raise ProfileError(f"Unknown threshold rule {text!r}: use sensitivity:S (0.5-1), cost:R (R > 0) or youden.")

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    def describe(self) -> str:
        if self.kind == "sensitivity":
            return (
                f"best site-sample specificity with sensitivity >= {self.value:.2f}, the threshold centred (log-odds) "
                "among those giving it"
            )
        if self.kind == "cost":
            return f"threshold minimising {self.value:g} x missed pneumonia + false alarms on the site sample"
        return "threshold maximising sensitivity + specificity - 1 (Youden) on the site sample"

    def threshold(self, labels: np.ndarray, probabilities: np.ndarray) -> float:
        """The chosen threshold (a film at it is called PNEUMONIA)."""
        labels = np.asarray(labels).astype(int)
        probabilities = np.asarray(probabilities, dtype=float)
        if labels.min(initial=1) == labels.max(initial=0) or len(labels) == 0:
            raise ProfileError("The sample needs films of both classes (NORMAL and PNEUMONIA).")
        if self.kind == "sensitivity":
            from pneumo_core.evaluation.metrics import choose_threshold

            highest = choose_threshold(labels, probabilities, self.value)
            return _centred_below(highest, probabilities[labels == 0])
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


def _centred_below(threshold: float, normal_probabilities: np.ndarray) -> float:
    """Midway in log-odds between ``threshold`` and the highest normal film's probability below it (``threshold``
    itself when none is below): every threshold in that range calls the same normal films pneumonia."""
    below = normal_probabilities[normal_probabilities < threshold]
    if not below.size:
        return threshold
    low, high = log_odds(np.clip([below.max(), threshold], 1e-12, 1 - 1e-12))
    return float(sigmoid((low + high) / 2))
