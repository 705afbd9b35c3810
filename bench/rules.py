"""Which threshold rule carries over to a site's next films? Each rule's operating point cross-validated, per model.

    python -m bench.rules [--model DIR ...] [--rule RULE ...] [--site ../shared/data/chest_xray/site_sample]

Scores the site sample with each model (its served runtime), then for each rule runs
:func:`pneumo_core.operations.calibration.cross_validated`: the temperature and the rule's threshold fitted on four
patient-grouped
folds, the fifth fold's films called at that operating point, averaged over 20 partitions. A rule is worth choosing
if it wins across models, not on one: the differences between rules are a film or two of the sample, and any choice
made on the sample makes its numbers optimistic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import append_results
from pneumo_core.common.films import patient_id
from pneumo_core.config import served_model_dir, site_sample_dir
from pneumo_core.evaluation.scoring import score_labelled_folder
from pneumo_core.operations.calibration import cross_validated
from pneumo_core.operations.rules import DEFAULT_RULE, Rule
from pneumo_core.serving.predictor import Predictor

RULES = (DEFAULT_RULE, "sensitivity:0.95", "sensitivity:0.98", "cost:5", "youden")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, action="append", help="a model directory (repeatable; default: the served)")
    parser.add_argument("--rule", action="append", help=f"a threshold rule (repeatable; default: {', '.join(RULES)})")
    parser.add_argument("--site", type=Path, default=None, help="a labelled folder (default: the site sample)")
    args = parser.parse_args()
    rules = [Rule.parse(text) for text in args.rule or RULES]
    rows, names = [], []
    for model_dir in args.model or [served_model_dir()]:
        predictor = Predictor.load(model_dir, operating_point="validation")
        scores = score_labelled_folder(predictor, args.site or site_sample_dir())
        patients = np.asarray([patient_id(Path(file).name) for file in scores.files])
        name = str(predictor.metadata.get("name", model_dir))
        names.append(f"{name} ({predictor.runtime})")
        for rule in rules:
            estimate = cross_validated(scores.labels, scores.logits, patients, rule)
            if estimate is None:
                rows.append((f"{name}, {rule}", "too few patients to cross-validate", "—", "—"))
                continue
            rows.append(
                (
                    f"{name}, {rule}",
                    f"accuracy {estimate['accuracy']:.3f}, sensitivity {estimate['sensitivity']:.3f}, "
                    f"specificity {estimate['specificity']:.3f}",
                    "—",
                    "—",
                )
            )
    print(
        append_results(
            "Threshold rules cross-validated on the site sample",
            "python -m bench.rules " + " ".join(f"--model {path}" for path in args.model or []),
            rows,
            f"Models: {', '.join(names)}. Each value is the mean over 20 partitions into 5 patient-grouped folds of the "
            f"pooled calls made by profiles fitted without the film's patient ({len(scores)} films).",
        )
    )


if __name__ == "__main__":
    main()
