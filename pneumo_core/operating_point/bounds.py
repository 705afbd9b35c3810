"""Exact bounds on what a site's next films will do, from counts on its labelled sample.

Every figure an operating point promises is a share of one class's films falling beyond an edge (a pneumonia film
below the threshold, a normal film at or above the referral band's upper edge...). With ``k`` of the sample's ``n``
films of that class beyond the edge, two facts give bounds that need no model of the scores:

- **Order statistics** (Wilks 1941; the fact that makes split-conformal prediction valid, Vovk et al. 2005,
  Angelopoulos & Bates 2021): when the edge is set just inside the ``(k + 1)``-th most extreme of ``n``
  exchangeable scores, the share ``p`` of the population beyond it is distributed as ``Beta(k + 1, n - k)``,
  whatever the scores' distribution. So the edge may be *chosen* on these very films by its rank. For an edge set
  independently of them, the same law's ``confidence`` quantile is the one-sided Clopper–Pearson (1934) upper limit
  of ``p``: one formula serves both.
- **Next films, not the population**: the count beyond the edge among the next ``N`` films of that class is then
  beta-binomial ``(N, k + 1, n - k)`` (the binomial mixed over that Beta law); its ``confidence`` quantile bounds the
  count on those ``N`` films, wider than ``N`` times the population bound when ``N`` is small.

Several films of one child are not independent (a child's films score alike), so counts are taken at their
effective size (Kish 1965): a class's films count ``n / d`` with the design effect ``d = 1 + (m - 1) · ICC``,
``m`` the films per patient (weighted by films, ``Σ nᵢ² / Σ nᵢ``) and ICC the intra-class correlation of the
class's logits between patients (one-way ANOVA, clipped to [0, 1]); ``k`` and ``N`` shrink alike. With one film per
patient ``d = 1`` and the bounds are the exact ones above. :mod:`pneumo_core.operating_point.simulation` measures
what the whole procedure keeps on sites drawn by patient.
SciPy is imported by the functions that compute.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pneumo_core.common.confidence import CONFIDENCE


def _check(n: float, next_films: int, confidence: float) -> None:
    if n <= 0 or next_films < 1:
        raise ValueError("a bound needs at least one film in the sample and one next film.")
    if not 0.5 <= confidence < 1:
        raise ValueError("confidence must be in [0.5, 1).")


def design_effect(logits: np.ndarray, patients: np.ndarray) -> float:
    """Kish's design effect ``1 + (m - 1) · ICC`` of one class's films (see the module docstring); 1 when every
    film is its own patient or the films do not cluster."""
    logits = np.asarray(logits, dtype=float)
    _, index, sizes = np.unique(np.asarray(patients), return_inverse=True, return_counts=True)
    films, groups = len(logits), len(sizes)
    if groups < 2 or groups == films:
        return 1.0
    means = np.bincount(index, logits) / sizes
    between = (sizes * (means - logits.mean()) ** 2).sum() / (groups - 1)
    within = ((logits - means[index]) ** 2).sum() / (films - groups)
    typical = (films - (sizes**2).sum() / films) / (groups - 1)
    icc = (between - within) / (between + (typical - 1) * within) if between + (typical - 1) * within > 0 else 1.0
    weighted_size = (sizes**2).sum() / films
    return float(1 + (weighted_size - 1) * min(max(icc, 0.0), 1.0))


@lru_cache(maxsize=4096)
def _upper_shares(n: int, next_films: int, confidence: float, design: float) -> np.ndarray:
    _check(n, next_films, confidence)
    if design < 1:
        raise ValueError("the design effect is at least 1.")
    result = np.append(_beta_binomial_shares(np.arange(n) / design, n / design, next_films, confidence, design), 1.0)
    result.setflags(write=False)  # index n: every sample film beyond the edge, nothing bounds the next ones
    return result


def _beta_binomial_shares(beyond: np.ndarray, n: float, next_films: int, confidence: float, design: float) -> np.ndarray:
    """The ``confidence`` quantile of beta-binomial(N, k + 1, n - k) over N, for each effective count ``beyond``
    (effective sizes: ``N = next_films / design`` rounded); computed from the log-probabilities, all counts at once."""
    from scipy.special import betaln, gammaln

    effective_next = max(round(next_films / design), 1)
    alpha, beta = beyond[:, None] + 1, n - beyond[:, None]
    q = np.arange(effective_next + 1)[None, :]
    log_pmf = (
        gammaln(effective_next + 1)
        - gammaln(q + 1)
        - gammaln(effective_next - q + 1)
        + betaln(q + alpha, effective_next - q + beta)
        - betaln(alpha, beta)
    )
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    return np.argmax(cdf >= confidence * (1 - 1e-12), axis=1) / effective_next  # the smallest count reaching it


def upper_shares(n: int, next_films: int, confidence: float = CONFIDENCE, design: float = 1.0) -> np.ndarray:
    """The one-sided ``confidence`` upper bound of the share of the next ``next_films`` films of a class that fall
    beyond an edge, for every count ``k`` (index, 0 to ``n``) of the sample's ``n`` films beyond it: the
    beta-binomial quantile over the next films, at the effective sizes of the design effect ``design`` (1: films
    independent, exact). The design effect is rounded to 3 decimals."""
    return _upper_shares(int(n), int(next_films), float(confidence), round(float(design), 3))


def upper_share(k: int, n: int, next_films: int, confidence: float = CONFIDENCE, design: float = 1.0) -> float:
    """:func:`upper_shares` for one count ``k``."""
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n (got k={k}, n={n}).")
    return float(upper_shares(n, next_films, confidence, design)[int(k)])


def population_upper_share(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided ``confidence`` upper bound of the population's share beyond the edge: the ``confidence`` quantile
    of ``Beta(k + 1, n - k)`` (the Clopper–Pearson upper limit; 1 for ``k = n``)."""
    from scipy.stats import beta

    _check(n, 1, confidence)
    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


def films_to_support(target: float, confidence: float = CONFIDENCE, design: float = 1.0, largest: int = 100_000) -> int | None:
    """The fewest films of a class, none beyond the edge, that support a share beyond it of at most ``1 - target``
    on as many next films (``None`` beyond ``largest``)."""

    def supported(n: int) -> bool:
        return _beta_binomial_shares(np.zeros(1), n / design, n, confidence, design)[0] <= 1 - target

    if not supported(largest):
        return None
    low, high = 1, largest
    while low < high:  # the bound falls as n grows: bisect
        middle = (low + high) // 2
        if supported(middle):
            high = middle
        else:
            low = middle + 1
    return low
