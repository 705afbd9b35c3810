"""The served fit, checked on simulated sites of the served sample's size: how often does each promise hold?

The population is the sample itself, by patient (the bootstrap principle: Efron 1979): a simulated site draws, with
replacement, as many patients of each class as the sample holds, and takes all their films, so a child's films stay
together as they do at a real site. :func:`~pneumo_core.operating_point.fit.fit_operating_point`, the procedure that
serves, is run on the site's films exactly as ``calibrate`` runs it on the sample (its default ``next_films``: as
many as the site's films); then a second, independent draw of the same size plays the site's next films, called at
the fitted edges. Over many sites this gives, for each promised figure, how often the next films kept the promise
(it should be about the confidence, 95%: much more is caution paid in specificity, less is a broken promise), the
mean of the promise and the mean of what the next films gave.

The temperature is not fitted: it rescales logits and edges alike and changes no call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pneumo_core.common.confidence import CONFIDENCE
from pneumo_core.operating_point.fit import fit_operating_point
from pneumo_core.operating_point.promises import AT_MOST, FIGURES, kept, realised
from pneumo_core.operating_point.rules import ReferralRule, Rule

SITES = 2000
"""Simulated sites per rule and band (a share kept of 0.95 is then known to ±0.01, two standard errors)."""


def simulate_sites(
    labels: np.ndarray,
    logits: np.ndarray,
    patients: np.ndarray,
    rule: Rule,
    band_rule: ReferralRule,
    sites: int = SITES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, Any]:
    """The simulation of the module docstring; ``patients`` (one id per film) group the films."""
    labels = np.asarray(labels).astype(int)
    logits = np.asarray(logits, dtype=float)
    patients = np.asarray(patients)
    groups = _patient_films(labels, patients)
    rng = np.random.default_rng(seed)
    promised, actual, held = [], [], []
    for _ in range(sites):
        site_labels, site_films, site_patients = _draw(groups, rng)
        point = fit_operating_point(
            site_labels, logits[site_films], rule, band_rule, None, confidence, site_patients, for_simulation=True
        )
        next_labels, next_films, _ = _draw(groups, rng)
        figures = point.promise.figures()
        came = realised(next_labels, logits[next_films], point.threshold_logit, point.low_logit, point.high_logit)
        promised.append(figures)
        actual.append(came)
        held.append(kept(figures, came))
    return {
        "sites": sites,
        "rule": str(rule),
        "band_rule": str(band_rule),
        "confidence": confidence,
        "patients": {"NORMAL": len(groups[0]), "PNEUMONIA": len(groups[1])},
        "figures": {
            name: {
                "kept": float(np.mean([row[name] for row in held])),
                "promised": float(np.mean([row[name] for row in promised])),
                "realised": float(np.nanmean([row[name] for row in actual])),
                "at_most": name in AT_MOST,
            }
            for name in FIGURES
        },
    }


def _patient_films(labels: np.ndarray, patients: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per class, one array of film indices per patient."""
    groups = []
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        ids, inverse = np.unique(patients[members], return_inverse=True)
        groups.append([members[inverse == i] for i in range(len(ids))])
    if min(len(group) for group in groups) < 2:
        raise ValueError("The simulation needs at least two patients of each class.")
    return groups[0], groups[1]


def _draw(
    groups: tuple[list[np.ndarray], list[np.ndarray]], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A site: as many patients of each class as the sample, drawn with replacement; its films' labels, indices and
    patients (a patient drawn twice is two children)."""
    indices, labels, drawn = [], [], []
    for label, group in enumerate(groups):
        for i in rng.integers(0, len(group), len(group)):
            indices.append(group[i])
            labels.append(np.full(len(group[i]), label))
            drawn.append(np.full(len(group[i]), len(drawn)))
    return np.concatenate(labels), np.concatenate(indices), np.concatenate(drawn)
