"""Lower confidence bounds of a proportion over patients, for every candidate threshold at once.

Films of one child are not independent (a patient's films tend to score alike), so a bound on a film-level
proportion (sensitivity, specificity) is taken over patients: a percentile bootstrap that resamples patients with
replacement and recomputes the proportion of their pooled films. For ``P`` patients, ``B`` replicates and ``T``
thresholds it is one ``(B, P) @ (P, T)`` product: each replicate is a multinomial count per patient.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_REPLICATES = 2000
CONFIDENCE = 0.95


def patient_lower_bounds(
    hits: np.ndarray,
    patients: np.ndarray,
    confidence: float = CONFIDENCE,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = 0,
) -> np.ndarray:
    """One-sided lower bounds ``(T,)`` of the proportion of films that are hits, per column of ``hits``.

    ``hits``: ``(N, T)`` booleans, film × candidate (e.g. "this pneumonia film scores ≥ threshold t");
    ``patients``: ``(N,)`` the patient of each film. The bound is the ``1 - confidence`` quantile of the proportion
    over ``replicates`` patient-bootstrap resamples (seeded: the same films give the same bounds).
    """
    hits = np.asarray(hits, dtype=float)
    if hits.ndim != 2 or len(hits) != len(patients):
        raise ValueError("hits must be (films, candidates) with one patient per film.")
    if not 0.5 <= confidence < 1:
        raise ValueError("confidence must be in [0.5, 1).")
    if len(hits) == 0:
        return np.zeros(hits.shape[1])
    unique, index = np.unique(np.asarray(patients), return_inverse=True)
    per_patient_hits = np.zeros((len(unique), hits.shape[1]))
    np.add.at(per_patient_hits, index, hits)
    per_patient_films = np.bincount(index, minlength=len(unique)).astype(float)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(unique), np.full(len(unique), 1 / len(unique)), size=replicates).astype(float)
    proportions = (counts @ per_patient_hits) / (counts @ per_patient_films)[:, None]
    return np.quantile(proportions, 1 - confidence, axis=0)
