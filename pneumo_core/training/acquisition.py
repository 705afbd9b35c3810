"""One acquisition style recognised on canonical films: a device's bold "R" marker in the top-left corner.

In the training split that style is nearly always pneumonia (179 of 190 films), while the later collection has normal
films of it too, which the served model calls pneumonia (``python -m bench.acquisition`` measures both). A film is
said to carry the style when the marker of one *training* film (:data:`MARKER_FILM`, relative to the training
split's class folders; nothing of the site sample defines it) matches its top-left corner with a normalised
correlation of at least :data:`MATCH`. :func:`acquisition_groups` gives training (``--balance-acquisition``) the
films' groups, so it can weight each group's classes alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from pneumo_core.serving.loading import load_canonical

MARKER_FILM = "PNEUMONIA/person667_virus_1253.jpeg"
MARKER_BOX = (slice(10, 40), slice(0, 18))  # the "R" marker in that canonical film
CORNER = (slice(0, 70), slice(0, 60))  # where the marker is looked for
MATCH = 0.7


def marker_template(train_root: Path) -> np.ndarray:
    """The marker cut out of :data:`MARKER_FILM` in ``train_root`` (a training split's class folders), as float32."""
    film = Path(train_root) / MARKER_FILM
    if not film.is_file():
        raise FileNotFoundError(
            f"The acquisition marker is cut from the training film {MARKER_FILM}, not found under {train_root}: "
            "train on the Kermany training split, or without --balance-acquisition."
        )
    return load_canonical(str(film))[MARKER_BOX].astype(np.float32)


def carries_marker(canonical: np.ndarray, template: np.ndarray) -> np.ndarray:
    """For ``(N, 224, 224)`` canonical films, whether each top-left corner matches the marker ``template``."""
    scores = [cv2.matchTemplate(film[CORNER].astype(np.float32), template, cv2.TM_CCOEFF_NORMED).max() for film in canonical]
    return np.asarray(scores, dtype=float).reshape(len(canonical)) >= MATCH


def acquisition_groups(batches: Iterable[np.ndarray], template: np.ndarray) -> np.ndarray:
    """Each film's acquisition group (1: carries the marker, 0: not) over an iterable of canonical batches."""
    groups = [carries_marker(batch, template).astype(int) for batch in batches]
    return np.concatenate(groups) if groups else np.zeros(0, dtype=int)


def balanced_weights(labels: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """Per-film weights n_g / (k_g · n_gc), so that within each group g both classes count alike.

    n_g films are in group g, n_gc of them of class c, k_g classes occur in it: each group keeps its share of the
    total weight. Without ``groups`` (one group) these are the balanced class weights n / (2 · n_class), NORMAL (the
    minority) counting as much as PNEUMONIA. With acquisition groups a style seen nearly only with one class no
    longer tells the class.
    """
    labels = np.asarray(labels).astype(int)
    groups = np.zeros_like(labels) if groups is None else np.asarray(groups).astype(int)
    weights = np.empty(len(labels))
    for group in np.unique(groups):
        members = groups == group
        counts = np.bincount(labels[members], minlength=2)
        classes = np.count_nonzero(counts)
        for c in np.flatnonzero(counts):
            weights[members & (labels == c)] = members.sum() / (classes * counts[c])
    return weights


def group_log_odds(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per-film logit offsets: the log-odds of PNEUMONIA in the film's group minus that over all films.

    Half a film is added to each class of each group, so a group of one class gets a large finite offset. Trained
    with balanced class weights (even odds over all films), a group that is pneumonia as often as all films gets 0.
    """
    labels = np.asarray(labels).astype(int)
    groups = np.asarray(groups).astype(int)

    def log_odds(members: np.ndarray) -> float:
        positives = labels[members].sum()
        return float(np.log((positives + 0.5) / (members.sum() - positives + 0.5)))

    overall = log_odds(np.ones(len(labels), dtype=bool))
    offsets = np.empty(len(labels))
    for group in np.unique(groups):
        offsets[groups == group] = log_odds(groups == group) - overall
    return offsets
