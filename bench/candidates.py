"""Judge candidate models as the recipe search does: the site sample's ROC AUC (with its interval) next to the
internal test's, for each model and for the mean logit of each pair.

    python -m bench.candidates --model DIR [--model DIR ...] [--site ../shared/data/chest_xray/site_sample]

Every model is scored on its float32 TensorFlow graph (the copy a candidate is judged on before any quantisation):
the site sample, and the internal test of its own manifest (held-out patients of the training split; models trained
on the same split share it, which the pairs need). A pair's score is the mean of its members' raw logits, what
``train.py --ensemble-of`` serves as one network. The site sample is where candidates are chosen, so its numbers are
optimistic for the chosen one; the rule a candidate must pass is fixed before it is scored (the model card).
"""

from __future__ import annotations

import argparse
from itertools import combinations
from pathlib import Path

import numpy as np

from bench.common import append_results
from pneumo_core.common.logits import sigmoid
from pneumo_core.config import default_data_dir, site_sample_dir
from pneumo_core.evaluation.metrics import bootstrap_intervals, classification_metrics
from pneumo_core.evaluation.scoring import internal_test_films, labelled_folder_films, score_films
from pneumo_core.serving.predictor import Predictor


def scored(model_dir: Path, site: Path, data: Path) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray, list[str]]]]:
    """A model's name and its (labels, logits, files) on the site sample and on its internal test."""
    predictor = Predictor.load(model_dir, runtime="tensorflow", operating_point="validation")
    results = {}
    for data_name, films in (("site", labelled_folder_films(site)), ("internal", internal_test_films(model_dir, data))):
        scores = score_films(predictor, films)
        results[data_name] = (scores.labels, scores.logits, scores.files)
    return str(predictor.metadata.get("name", model_dir)), results


def auc_with_interval(labels: np.ndarray, logits: np.ndarray) -> str:
    probabilities = sigmoid(logits)
    auc = classification_metrics(labels, probabilities, 0.5)["roc_auc"]
    low, high = bootstrap_intervals(labels, probabilities, 0.5)["roc_auc"]
    return f"{auc:.4f} ({low:.3f}–{high:.3f})"


def both(cells: list[str]) -> str:
    return f"site sample {cells[0]}; internal test {cells[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True, help="a model directory (repeatable)")
    parser.add_argument("--site", type=Path, default=None, help="a labelled folder (default: the site sample)")
    parser.add_argument("--data", type=Path, default=None, help="the training collection (default: the data root)")
    args = parser.parse_args()
    site, data = args.site or site_sample_dir(), args.data or default_data_dir()
    models = [scored(model_dir, site, data) for model_dir in args.model]
    rows = []
    for name, results in models:
        cells = [auc_with_interval(*results[data_name][:2]) for data_name in ("site", "internal")]
        rows.append((name, both(cells), "—", "—"))
    for (name_a, a), (name_b, b) in combinations(models, 2):
        cells = []
        for data_name in ("site", "internal"):
            labels, logits_a, files_a = a[data_name]
            _, logits_b, files_b = b[data_name]
            if files_a != files_b:
                cells.append("different films (not the same split)")
                continue
            cells.append(auc_with_interval(labels, (logits_a + logits_b) / 2))
        rows.append((f"mean logit of {name_a} and {name_b}", both(cells), "—", "—"))
    print(
        append_results(
            "Candidates: site-sample and internal-test ROC AUC",
            "python -m bench.candidates " + " ".join(f"--model {path}" for path in args.model),
            rows,
            "ROC AUC with its 95% bootstrap interval over films, float32 TensorFlow graph. "
            "The site sample is where candidates are chosen: optimistic for the chosen one.",
        )
    )


if __name__ == "__main__":
    main()
