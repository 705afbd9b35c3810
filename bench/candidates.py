"""Judge candidate models against the served one: each model's and each average's ROC AUC on the site sample and the
internal test, and its paired difference from the served model with a patient-bootstrap interval, against the
serving rule (:data:`pneumo_core.evaluation.comparison.SERVING_RULE`).

    python -m bench.candidates --model models/served --model DIR [--model DIR ...] [--site FOLDER]

The first ``--model`` is the reference (the served model); every other model, and the mean logit of every pair and
triple of the models given, is a candidate.

Every model is scored on its float32 TensorFlow graph (the copy a candidate is judged on before any quantisation):
the site sample, and the internal test of its own manifest (held-out patients of the training split; models trained
on the same split share it, which the pairs need). A pair's score is the mean of its members' raw logits, what
``train.py --ensemble-of`` serves as one network. The site sample is where candidates are chosen, so its numbers are
optimistic for the chosen one; the rule a candidate must pass is fixed before it is scored, and asks for a paired
gain beyond the sample's noise.
"""

from __future__ import annotations

import argparse
from itertools import combinations
from pathlib import Path

import numpy as np

from bench.common import record_results
from pneumo_core.common.confidence import BOOTSTRAP_RESAMPLES
from pneumo_core.common.films import patient_id
from pneumo_core.common.logits import sigmoid
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.comparison import SERVING_RULE, ScoredFilms, compared, comparison_scores
from pneumo_core.evaluation.metrics import classification_metrics, patient_intervals
from pneumo_core.store.model_dir import read_metadata


def auc_with_interval(labels: np.ndarray, logits: np.ndarray, files: list[str]) -> str:
    probabilities = sigmoid(logits)
    auc = classification_metrics(labels, probabilities, 0.5)["roc_auc"]
    patients = [patient_id(Path(file).name) for file in files]
    low, high = patient_intervals(labels, probabilities, 0.5, patients)["roc_auc"]
    return f"{auc:.4f} ({low:.3f}–{high:.3f})"


def against_reference(
    name: str, candidate: dict[str, ScoredFilms], reference: dict[str, ScoredFilms]
) -> tuple[str, str, str, str]:
    """One table row: the candidate's AUCs, its paired differences from the reference and the rule's verdict."""
    result = compared(reference, candidate)
    site, internal = result["site"], result["internal"]
    cells = [auc_with_interval(*candidate[d]) for d in ("site", "internal")]
    return (
        name,
        f"AUC: site sample {cells[0]}; internal test {cells[1]}",
        f"paired Δ site {site['difference']:+.4f} (one-sided 95% bound {site['lower_bound']:+.4f}; "
        f"{site['interval'][0]:+.4f} to {site['interval'][1]:+.4f}), internal {internal['difference']:+.4f}",
        "passes: serve it" if result["passes"] else "does not pass",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True, help="a model directory (repeatable)")
    parser.add_argument("--site", type=Path, default=None, help="a labelled folder (default: the site sample)")
    parser.add_argument("--data", type=Path, default=None, help="the training collection (default: the data root)")
    args = parser.parse_args()
    site, data = args.site or site_sample_dir(), args.data or locations().data_dir
    models = [(model_dir, comparison_scores(model_dir, site, data)) for model_dir in args.model]
    names = {model_dir: str(read_metadata(model_dir).get("name", model_dir)) for model_dir, _ in models}
    (reference_dir, reference), *others = models
    rows = [
        (
            f"{names[reference_dir]} (reference)",
            "AUC: " + "; ".join(f"{d} {auc_with_interval(*reference[d])}" for d in ("site", "internal")),
            "—",
            "—",
        )
    ]
    rows += [against_reference(names[model_dir], scores, reference) for model_dir, scores in others]
    for size in (2, 3):
        for members in combinations(models, size):
            mean = {
                d: (reference[d][0], np.mean([scores[d][1] for _, scores in members], axis=0), reference[d][2])
                for d in ("site", "internal")
            }
            name = f"mean logit of {' + '.join(names[model_dir] for model_dir, _ in members)}"
            rows.append(against_reference(name, mean, reference))
    print(
        record_results(
            "Candidates against the served model: paired ROC-AUC differences and the serving rule",
            "python -m bench.candidates " + " ".join(f"--model {path}" for path in args.model),
            rows,
            f"Float32 TensorFlow graph. Rule: {SERVING_RULE}. Intervals: {BOOTSTRAP_RESAMPLES} patient-bootstrap resamples, the "
            "same patients drawn for both models. The site sample is where candidates are chosen: optimistic for the "
            "chosen one.",
        )
    )


if __name__ == "__main__":
    main()
