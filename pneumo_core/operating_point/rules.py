"""Threshold rules and referral bands: how a site's operating point is placed on its labelled sample's scores.

Every edge is set by rank among one class's films, so that its promise (:mod:`pneumo_core.operating_point.promises`)
holds whatever the scores' distribution: the threshold and the band's low edge from the pneumonia films' lower tail,
the band's high edge from the normal films' upper tail. An edge lies midway between the film it keeps on its side and
the nearest score of the sample on the other side, so that no film of the sample sits on it. Scores are logits (or
any increasing function of them: the edges move with them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pneumo_core.common.confidence import CONFIDENCE
from pneumo_core.operating_point.bounds import films_to_support, upper_shares
from pneumo_core.operating_point.promises import next_counts
from pneumo_core.store.profiles import ProfileError

DEFAULT_RULE = "sensitivity-bound:0.9"
DEFAULT_BAND = "band:0.92/0.85"


@dataclass(frozen=True)
class Edge:
    """A fitted edge (a score), how many of its class's sample films fall beyond it, and whether its target held."""

    score: float
    beyond: int
    supported: bool


@dataclass(frozen=True)
class Rule:
    """How the binary threshold is set on the site's labelled sample.

    - ``sensitivity-bound:S`` (the default): the highest threshold whose promised sensitivity on the site's next films
      (:func:`~pneumo_core.operating_point.promises.promise`) is ≥ S; when even calling every pneumonia film of the
      sample promises less, that (the lowest pneumonia film) is the threshold and the shortfall is said
      (:func:`shortfalls`);
    - ``sensitivity:S``: the highest threshold whose sensitivity *on the sample* is ≥ S (optimistic: no promise);
    - ``cost:R``: the threshold minimising R · missed pneumonia + false alarms on the sample;
    - ``youden``: the threshold maximising sensitivity + specificity − 1 on the sample.
    """

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        kind, _, value = text.strip().lower().partition(":")
        try:
            if kind in ("sensitivity", "sensitivity-bound") and 0.5 <= float(value) < 1.0:
                return cls(kind, float(value))
            if kind == "cost" and float(value) > 0:
                return cls(kind, float(value))
            if kind == "youden" and not value:
                return cls(kind)
        except ValueError:
            pass
        raise ProfileError(
            f"Unknown threshold rule {text!r}: use sensitivity-bound:S or sensitivity:S (S from 0.5, below 1), "
            "cost:R (R > 0) or youden."
        )

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    def describe(self) -> str:
        if self.kind == "sensitivity-bound":
            return f"the highest threshold whose promised sensitivity on the site's next films is at least {self.value:.2f}"
        if self.kind == "sensitivity":
            return f"the highest threshold whose sensitivity on the site sample is at least {self.value:.2f} (no promise)"
        if self.kind == "cost":
            return f"the threshold minimising {self.value:g} x missed pneumonia + false alarms on the site sample"
        return "the threshold maximising sensitivity + specificity - 1 (Youden) on the site sample"

    def fit(
        self,
        labels: np.ndarray,
        scores: np.ndarray,
        next_films: int | None = None,
        confidence: float = CONFIDENCE,
        designs: tuple[float, float] = (1.0, 1.0),
    ) -> Edge:
        """The threshold on ``scores`` (a film at or above it is called PNEUMONIA); ``designs``: the NORMAL and
        PNEUMONIA films' design effects."""
        labels, scores = _checked(labels, scores)
        pneumonia = np.sort(scores[labels == 1])
        if self.kind == "sensitivity-bound":
            next_p, _ = next_counts(len(pneumonia), int((labels == 0).sum()), next_films)
            promised = 1 - upper_shares(len(pneumonia), next_p, confidence, designs[1])
            return _lower_tail_edge(pneumonia, scores, promised, self.value)
        if self.kind == "sensitivity":
            misses = int(np.floor((1 - self.value) * len(pneumonia) + 1e-9))
            return _edge_below(pneumonia, scores, min(misses, len(pneumonia) - 1), True)
        candidates = np.unique(pneumonia)
        called = scores[None, :] >= candidates[:, None]  # (threshold, film)
        missed = ((~called) & (labels == 1)).sum(axis=1)
        alarms = (called & (labels == 0)).sum(axis=1)
        if self.kind == "cost":
            loss = self.value * missed + alarms
        else:
            loss = -((len(pneumonia) - missed) / len(pneumonia) + ((labels == 0).sum() - alarms) / (labels == 0).sum())
        best = int(np.argmin(loss))  # ties: the lowest threshold (fewest misses)
        return _edge_below(pneumonia, scores, int(missed[best]), True)


@dataclass(frozen=True)
class ReferralRule:
    """``band:S/P``: the referral band ``[low, high)``. Below ``low`` a film is called NORMAL, from ``high``
    PNEUMONIA, in between it is referred to a radiologist.

    ``low`` is the highest edge whose promised share of the next pneumonia films called NORMAL is at most 1 − S (set
    among the pneumonia films' lower tail: a film that scores like the sample's lowest pneumonia films is referred);
    ``high`` the lowest edge whose promised share of the next normal films called PNEUMONIA is at most 1 − P (set
    among the normal films' upper tail). The band always holds the binary threshold (``low ≤ threshold ≤ high``), so a
    decision never contradicts the binary label. ``band:none`` refers nothing.
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
        raise ProfileError(
            f"Unknown referral band {text!r}: use band:S/P (each from 0.5, below 1, e.g. {DEFAULT_BAND}) or band:none."
        )

    def __str__(self) -> str:
        return "band:none" if self.sensitivity is None else f"band:{self.sensitivity:g}/{self.specificity:g}"

    def describe(self) -> str:
        if self.sensitivity is None:
            return "no referral band: every film gets the binary call"
        return (
            f"NORMAL only where at most {1 - self.sensitivity:.0%} of the next pneumonia films are promised to fall, "
            f"PNEUMONIA only where at most {1 - self.specificity:.0%} of the next normal films are, referred in between"
        )

    def fit(
        self,
        labels: np.ndarray,
        scores: np.ndarray,
        threshold: float,
        next_films: int | None = None,
        confidence: float = CONFIDENCE,
        designs: tuple[float, float] = (1.0, 1.0),
    ) -> tuple[Edge, Edge]:
        """``(low, high)`` with ``low ≤ threshold ≤ high``; ``designs`` as for :meth:`Rule.fit`."""
        labels, scores = _checked(labels, scores)
        if self.sensitivity is None:
            return Edge(threshold, -1, True), Edge(threshold, -1, True)
        pneumonia, normal = np.sort(scores[labels == 1]), np.sort(scores[labels == 0])[::-1]
        next_p, next_n = next_counts(len(pneumonia), len(normal), next_films)
        low_promised = 1 - upper_shares(len(pneumonia), next_p, confidence, designs[1])
        high_promised = 1 - upper_shares(len(normal), next_n, confidence, designs[0])
        low = _lower_tail_edge(pneumonia, scores, low_promised, self.sensitivity)
        high = _upper_tail_edge(normal, scores, high_promised, self.specificity)
        if low.score > threshold:
            low = Edge(threshold, int((pneumonia < threshold).sum()), low.supported)
        if high.score < threshold:
            high = Edge(threshold, int((normal >= threshold).sum()), high.supported)
        return low, high


def shortfalls(
    labels: np.ndarray,
    rule: Rule,
    band_rule: ReferralRule,
    next_films: int | None = None,
    confidence: float = CONFIDENCE,
    designs: tuple[float, float] = (1.0, 1.0),
) -> list[str]:
    """What the sample cannot support of the rule's and the band's targets, each with the sample that would (as many
    next films as sample films, the films clustering as in this sample)."""
    labels = np.asarray(labels).astype(int)
    n_p, n_n = int((labels == 1).sum()), int((labels == 0).sum())
    next_p, next_n = next_counts(n_p, n_n, next_films)
    best_p = 1 - upper_shares(n_p, next_p, confidence, designs[1])[0]
    best_n = 1 - upper_shares(n_n, next_n, confidence, designs[0])[0]
    wanted = []
    if rule.kind == "sensitivity-bound" and best_p < rule.value:
        wanted.append(("sensitivity", rule.value, best_p, n_p, "pneumonia", designs[1]))
    if band_rule.sensitivity is not None and best_p < band_rule.sensitivity:
        wanted.append(
            ("the share of pneumonia films not called NORMAL", band_rule.sensitivity, best_p, n_p, "pneumonia", designs[1])
        )
    if band_rule.specificity is not None and best_n < band_rule.specificity:
        wanted.append(
            ("the share of normal films not called PNEUMONIA", band_rule.specificity, best_n, n_n, "normal", designs[0])
        )
    messages = []
    for figure, target, best, have, kind, design in wanted:
        needed = films_to_support(target, confidence, design)
        more = (
            f"{needed - have} more {kind} films without a miss would support {target:.2f}" if needed else "no sample size would"
        )
        messages.append(f"This sample supports {figure} >= {best:.3f} at most (not {target:.2f}); {more}.")
    return messages


def _checked(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    if len(labels) == 0 or labels.min() == labels.max():
        raise ProfileError("The sample needs films of both classes (NORMAL and PNEUMONIA).")
    return labels, scores


def _lower_tail_edge(ascending: np.ndarray, scores: np.ndarray, promised: np.ndarray, target: float) -> Edge:
    """The highest edge below which at most ``m`` of the films ``ascending`` lie with ``promised[m] ≥ target``."""
    reaching = np.flatnonzero(promised[: len(ascending)] >= target - 1e-12)
    return _edge_below(ascending, scores, int(reaching.max()) if reaching.size else 0, bool(reaching.size))


def _edge_below(ascending: np.ndarray, scores: np.ndarray, misses: int, supported: bool) -> Edge:
    """Midway between the ``(misses + 1)``-th lowest of ``ascending`` and the highest sample score below it."""
    kept = ascending[misses]
    below = scores[scores < kept]
    score = (kept + below.max()) / 2 if below.size else kept - 1.0
    return Edge(float(score), int((ascending < score).sum()), supported)


def _upper_tail_edge(descending: np.ndarray, scores: np.ndarray, promised: np.ndarray, target: float) -> Edge:
    """The lowest edge at or above which at most ``k`` of the films ``descending`` lie with ``promised[k] ≥ target``."""
    reaching = np.flatnonzero(promised[: len(descending)] >= target - 1e-12)
    allowed = int(reaching.max()) if reaching.size else 0
    kept = descending[allowed]  # the highest film kept below the edge
    above = scores[scores > kept]
    score = (kept + above.min()) / 2 if above.size else kept + 1.0
    return Edge(float(score), int((descending >= score).sum()), bool(reaching.size))
