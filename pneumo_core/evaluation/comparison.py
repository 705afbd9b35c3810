"""Comparing two models on the same films: the paired ROC-AUC difference with a patient-bootstrap interval, and the
rule a candidate must pass to replace the served model (``python -m pneumo_core compare`` records the verdict in the
candidate's metadata, where the shadow's promotion check reads it; ``bench.candidates`` tabulates it).

Both models score the same films, so their AUCs share the films' luck: the difference is resampled in pairs (the same
patients drawn for both), which is far tighter than two separate intervals. A difference whose one-sided 95% interval
still includes 0 is noise in this sample, however large it looks (the model card, "Recipes tried", has the site
sample's rankings that a later collection did not repeat).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.common.confidence import BOOTSTRAP_RESAMPLES, CONFIDENCE
from pneumo_core.common.films import patient_id

MAX_INTERNAL_DROP = 0.002
"""A candidate may lose at most this much internal-test ROC AUC against the served model."""
SERVING_RULE = (
    f"serve a candidate only if its site-sample ROC AUC beats the served model's with the one-sided {CONFIDENCE:.0%} "
    f"patient-bootstrap interval of the paired difference above 0, and its internal-test AUC drops by at most "
    f"{MAX_INTERNAL_DROP}"
)


@dataclass(frozen=True)
class PairedDifference:
    """``auc(candidate) - auc(reference)`` on the same films, with its one-sided lower bound and two-sided interval."""

    difference: float
    lower_bound: float  # one-sided, at CONFIDENCE
    interval: tuple[float, float]  # two-sided, at CONFIDENCE
    films: int
    patients: int

    def as_json(self) -> dict:
        return asdict(self)


def paired_auc_difference(
    labels: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
    patients: np.ndarray,
    replicates: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """The paired difference of ROC AUCs of two score vectors on the same films, resampling patients with
    replacement (the same draw for both models; a draw with one class only is drawn again)."""
    from sklearn.metrics import roc_auc_score

    labels, candidate, reference = (np.asarray(values) for values in (labels, candidate, reference))
    patients = np.asarray(patients)
    if not (len(labels) == len(candidate) == len(reference) == len(patients)):
        raise ValueError("labels, both models' scores and patients must describe the same films.")
    unique, index = np.unique(patients, return_inverse=True)
    films_of = [np.flatnonzero(index == i) for i in range(len(unique))]
    rng = np.random.default_rng(seed)
    differences = []
    while len(differences) < replicates:
        chosen = np.concatenate([films_of[i] for i in rng.integers(0, len(unique), len(unique))])
        if labels[chosen].min() == labels[chosen].max():
            continue
        differences.append(roc_auc_score(labels[chosen], candidate[chosen]) - roc_auc_score(labels[chosen], reference[chosen]))
    differences = np.asarray(differences)
    alpha = 1 - CONFIDENCE
    return PairedDifference(
        difference=float(roc_auc_score(labels, candidate) - roc_auc_score(labels, reference)),
        lower_bound=float(np.quantile(differences, alpha)),
        interval=(float(np.quantile(differences, alpha / 2)), float(np.quantile(differences, 1 - alpha / 2))),
        films=int(len(labels)),
        patients=int(len(unique)),
    )


def passes_serving_rule(site: PairedDifference, internal_difference: float) -> bool:
    """:data:`SERVING_RULE`: the site-sample gain holds beyond its noise and the internal test does not pay for it."""
    return site.lower_bound > 0 and internal_difference >= -MAX_INTERNAL_DROP


ScoredFilms = tuple[np.ndarray, np.ndarray, list[str]]
"""(labels, raw logits as float64, file names) of one model on one set of films."""


def comparison_scores(model_dir: Path, site: Path, data: Path) -> dict[str, ScoredFilms]:
    """A model's scores on its float32 TensorFlow graph (what a candidate is judged on before any quantisation): on
    the site folder, and on the internal test of its own manifest under ``data`` (models of one split share it)."""
    from pneumo_core.evaluation.scoring import internal_test_films, labelled_folder_films, score_films
    from pneumo_core.serving.predictor import Predictor

    predictor = Predictor.load(model_dir, runtime="tensorflow", operating_point="validation")
    sets = {"site": labelled_folder_films(site), "internal": internal_test_films(model_dir, data)}
    scored = {}
    for name, films in sets.items():
        scores = score_films(predictor, films)
        scored[name] = (scores.labels, scores.logits.astype(np.float64), scores.files)
    return scored


def compared(reference: dict[str, ScoredFilms], candidate: dict[str, ScoredFilms]) -> dict[str, Any]:
    """The paired differences of a candidate's scores from the reference's on the same films, and the rule's verdict."""
    differences = {}
    for name in ("site", "internal"):
        (labels, reference_logits, files), (_, candidate_logits, candidate_files) = reference[name], candidate[name]
        if files != candidate_files:
            raise ValueError(
                f"The two models were scored on different {name} films (trained on different splits): compare models "
                "trained on the same split, so that neither has seen the other's internal test."
            )
        patients = np.asarray([patient_id(Path(file).name) for file in files])
        differences[name] = paired_auc_difference(labels, candidate_logits, reference_logits, patients)
    return {
        "site": differences["site"].as_json(),
        "internal": differences["internal"].as_json(),
        "passes": passes_serving_rule(differences["site"], differences["internal"].difference),
        "rule": SERVING_RULE,
    }


def compare_models(reference_dir: Path, candidate_dir: Path, site: Path, data: Path) -> dict[str, Any]:
    """A candidate judged against the reference (the served model) on the site folder and the reference's internal
    test: :func:`compared`, with the reference's identity, as ``compare`` records it in the candidate's metadata."""
    from pneumo_core.store.model_dir import read_metadata

    reference_metadata = read_metadata(reference_dir)
    result = compared(comparison_scores(reference_dir, site, data), comparison_scores(candidate_dir, site, data))
    return {
        "reference_name": str(reference_metadata.get("name", reference_dir)),
        "reference_sha256": str(reference_metadata.get("model_sha256", "")),
        **result,
    }
