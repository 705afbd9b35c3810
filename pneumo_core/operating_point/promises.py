"""What an operating point promises about a site's next films, computed from its labelled sample.

An operating point calls a film PNEUMONIA (its binary ``label``) from the ``threshold``, and decides NORMAL below the
referral band's ``low`` edge, PNEUMONIA from its ``high`` edge, REFER in between. For the next ``N`` films (by
default as many as the sample, with its mix of classes: ``N_p`` pneumonia and ``N_n`` normal films) it promises,
each with probability at least ``confidence`` (:mod:`pneumo_core.operating_point.bounds`, each class's counts at
its effective size when a child's films cluster; ``m`` of the sample's ``n_p`` pneumonia films and ``k`` of its
``n_n`` normal films beyond the edge named):

- ``sensitivity`` ≥ 1 − upper share of pneumonia films below the threshold (order statistics: the threshold is set
  by rank among the pneumonia films); ``specificity`` ≥ 1 − upper share of normal films at or above it;
- ``missed_by_normal`` ≤ upper share of pneumonia films below ``low``; ``normal_called_pneumonia`` ≤ upper share of
  normal films at or above ``high``;
- ``decided_sensitivity`` ≥ 1 − upper share of the *decided* pneumonia films below ``low``, with the sample's
  ``n_d`` decided pneumonia films as the sample and as many next ones: every pneumonia film below ``low`` is decided,
  so among the decided films ``low`` still lies below the ``(m + 1)``-th lowest, and the order-statistic law holds
  for the decided films given how many there are (``high`` is set from the normal films, independently of them);
  ``decided_specificity`` likewise from the decided normal films at or above ``high``;
- ``referred`` ≤ upper share of the sample's films of both classes inside the band, over all its films, at the larger
  design effect of the two classes (each edge
  sits next to the sample film it keeps inside the band, so the sample's share inside overstates the population's
  as often as not; :mod:`pneumo_core.operating_point.simulation` measures the coverage).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from pneumo_core.common.confidence import CONFIDENCE
from pneumo_core.operating_point.bounds import design_effect, upper_share

FIGURES = (
    "sensitivity",
    "specificity",
    "decided_sensitivity",
    "decided_specificity",
    "referred",
    "missed_by_normal",
    "normal_called_pneumonia",
)
"""Every figure promised, in the order the JSON and the tables show them."""
AT_MOST = ("referred", "missed_by_normal", "normal_called_pneumonia")
"""The figures promised as "at most"; the others are promised as "at least"."""


@dataclass(frozen=True)
class Promise:
    """Bounds on the next ``next_films`` films (``next_pneumonia`` + ``next_normal``), each holding with probability
    ≥ ``confidence``: "at least" for sensitivities and specificities, "at most" for :data:`AT_MOST`."""

    sensitivity: float
    specificity: float
    decided_sensitivity: float
    decided_specificity: float
    referred: float
    missed_by_normal: float
    normal_called_pneumonia: float
    next_films: int
    next_pneumonia: int
    next_normal: int
    confidence: float = CONFIDENCE

    def figures(self) -> dict[str, float]:
        """The promised figures by name (:data:`FIGURES`)."""
        return {name: getattr(self, name) for name in FIGURES}

    def as_dict(self) -> dict:
        return asdict(self)


def next_counts(n_pneumonia: int, n_normal: int, next_films: int | None) -> tuple[int, int]:
    """The next films of each class: ``next_films`` (default: the sample's size) split as the sample's classes are."""
    total = n_pneumonia + n_normal
    next_films = total if next_films is None else int(next_films)
    if next_films < 2:
        raise ValueError("next_films must be at least 2 (one film of each class).")
    pneumonia = min(max(round(next_films * n_pneumonia / total), 1), next_films - 1)
    return pneumonia, next_films - pneumonia


def promise(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    low: float,
    high: float,
    next_films: int | None = None,
    confidence: float = CONFIDENCE,
    designs: tuple[float, float] = (1.0, 1.0),
) -> Promise:
    """The promise of the module docstring for films ``scores`` (logits or probabilities: the edges are on the same
    scale) with true ``labels`` (1 PNEUMONIA), at ``threshold`` and the band ``[low, high)``; ``designs`` are the
    NORMAL and PNEUMONIA films' design effects (:func:`class_designs`)."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    pneumonia, normal = scores[labels == 1], scores[labels == 0]
    n_p, n_n = len(pneumonia), len(normal)
    if not n_p or not n_n:
        raise ValueError("A promise needs films of both classes (NORMAL and PNEUMONIA).")
    next_p, next_n = next_counts(n_p, n_n, next_films)

    def share_beyond(beyond: np.ndarray, n_next: int, label: int | None) -> float:
        design = max(designs) if label is None else designs[label]
        return upper_share(int(beyond.sum()), len(beyond), n_next, confidence, design) if len(beyond) else 1.0

    decided_p = pneumonia[(pneumonia < low) | (pneumonia >= high)]
    decided_n = normal[(normal < low) | (normal >= high)]
    referred = np.concatenate([(pneumonia >= low) & (pneumonia < high), (normal >= low) & (normal < high)])
    return Promise(
        sensitivity=1 - share_beyond(pneumonia < threshold, next_p, 1),
        specificity=1 - share_beyond(normal >= threshold, next_n, 0),
        decided_sensitivity=1 - share_beyond(decided_p < low, _scaled(len(decided_p), n_p, next_p), 1),
        decided_specificity=1 - share_beyond(decided_n >= high, _scaled(len(decided_n), n_n, next_n), 0),
        referred=share_beyond(referred, next_p + next_n, None) if low < high else 0.0,  # no band: none referred
        missed_by_normal=share_beyond(pneumonia < low, next_p, 1),
        normal_called_pneumonia=share_beyond(normal >= high, next_n, 0),
        next_films=next_p + next_n,
        next_pneumonia=next_p,
        next_normal=next_n,
        confidence=confidence,
    )


def class_designs(labels: np.ndarray, logits: np.ndarray, patients: np.ndarray | None) -> tuple[float, float]:
    """The design effects of the NORMAL and the PNEUMONIA films (:func:`~pneumo_core.operating_point.bounds.design_effect`;
    1 and 1 without patients)."""
    if patients is None:
        return 1.0, 1.0
    labels, logits, patients = np.asarray(labels).astype(int), np.asarray(logits, dtype=float), np.asarray(patients)
    normal, pneumonia = (design_effect(logits[labels == c], patients[labels == c]) for c in (0, 1))
    return normal, pneumonia


def _scaled(part: int, whole: int, next_whole: int) -> int:
    """The next films' share of ``next_whole`` in proportion ``part / whole`` (at least one)."""
    return max(round(next_whole * part / whole), 1)


def realised(labels: np.ndarray, scores: np.ndarray, threshold: float, low: float, high: float) -> dict[str, float]:
    """What the films ``scores`` with ``labels`` actually gave at the operating point: the figures of
    :data:`FIGURES` (NaN where a class has no film to count)."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=float)
    pneumonia, normal = scores[labels == 1], scores[labels == 0]
    decided_p = (pneumonia < low) | (pneumonia >= high)
    decided_n = (normal < low) | (normal >= high)

    def mean(values: np.ndarray) -> float:
        return float(values.mean()) if values.size else float("nan")

    return {
        "sensitivity": mean(pneumonia >= threshold),
        "specificity": mean(normal < threshold),
        "decided_sensitivity": mean(pneumonia[decided_p] >= high),
        "decided_specificity": mean(normal[decided_n] < low),
        "referred": mean(np.concatenate([~decided_p, ~decided_n])),
        "missed_by_normal": mean(pneumonia < low),
        "normal_called_pneumonia": mean(normal >= high),
    }


def kept(promised: dict[str, float], actual: dict[str, float]) -> dict[str, bool]:
    """For each figure, whether the films that came kept its promise (a figure with nothing to count keeps it)."""
    result = {}
    for name, bound in promised.items():
        value = actual[name]
        result[name] = bool(not np.isfinite(value) or (value <= bound + 1e-12 if name in AT_MOST else value >= bound - 1e-12))
    return result
