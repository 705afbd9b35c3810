"""Which threshold rule and referral band hold on a site's next films? Each simulated on the site sample, per model.

    python -m bench.rules [--model DIR ...] [--rule RULE ...] [--band BAND ...] [--folds 3] [--site FOLDER]

Scores the site sample with each model (its served runtime), then for each rule and band runs
:func:`pneumo_core.operations.simulation.simulate_next_films`: 200 splits of the sample by patient into a fit part
and a "next films" part (one of ``--folds`` folds), the temperature, threshold and band fitted on the first and the
second called with them.
Reported per rule: how often the next films' sensitivity fell below the rule's target, and the mean and 90% range of
their sensitivity and specificity; per band: the share referred and the decided films' sensitivity and specificity,
and how often those fell below the goals (0.98, 0.95).

The choice made with it, written down before measuring: the default rule is ``sensitivity-bound:0.97`` (the target
kept, as a patient-level lower bound); the default band is, among the bands measured, the one with the smallest mean
share referred whose decided films reach, on average over the splits, sensitivity ≥ 0.98 and specificity ≥ 0.95.
No band did (2026-12-04, bench/RESULTS.md); the fallback, chosen after that: the band referring at most 15% of the
sample with the highest decided specificity there (``band:0.99/0.95``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import append_results
from pneumo_core.common.films import patient_id
from pneumo_core.config import served_model_dir, site_sample_dir
from pneumo_core.evaluation.scoring import score_labelled_folder
from pneumo_core.operations.rules import DEFAULT_BAND, DEFAULT_RULE, ReferralRule, Rule
from pneumo_core.operations.simulation import FOLDS, simulate_next_films
from pneumo_core.serving.predictor import Predictor

RULES = (DEFAULT_RULE, "sensitivity-bound:0.95", "sensitivity:0.97", "sensitivity:0.95", "cost:5", "youden")
BANDS = (DEFAULT_BAND, "band:0.99/0.97", "band:0.99/0.93", "band:0.98/0.95", "band:0.98/0.93", "band:0.97/0.93")


def _spread(summary: dict, key: str) -> str:
    low, high = summary[key]["range"]
    return f"{summary[key]['mean']:.3f} ({low:.3f}-{high:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, action="append", help="a model directory (repeatable; default: the served)")
    parser.add_argument("--rule", action="append", help=f"a threshold rule (repeatable; default: {', '.join(RULES)})")
    parser.add_argument("--band", action="append", help=f"a referral band (repeatable; default: {', '.join(BANDS)})")
    parser.add_argument("--site", type=Path, default=None, help="a labelled folder (default: the site sample)")
    parser.add_argument("--folds", type=int, default=FOLDS, help=f"the next part is one fold of this many (default {FOLDS})")
    args = parser.parse_args()
    rules = [Rule.parse(text) for text in args.rule or RULES]
    bands = [ReferralRule.parse(text) for text in args.band or BANDS]
    rows, names = [], []
    for model_dir in args.model or [served_model_dir()]:
        predictor = Predictor.load(model_dir, operating_point="validation")
        scores = score_labelled_folder(predictor, args.site or site_sample_dir())
        kept = ~scores.withheld
        labels, logits = scores.labels[kept], scores.logits[kept]
        patients = np.asarray([patient_id(Path(file).name) for file in scores.files])[kept]
        name = str(predictor.metadata.get("name", model_dir))
        names.append(f"{name} ({predictor.runtime})")
        for rule in rules:
            summary = simulate_next_films(labels, logits, patients, rule, bands[0], folds=args.folds)
            below = f"below target {summary['below_target']:.0%} of splits" if "below_target" in summary else "no target"
            rows.append(
                (
                    f"{name}, rule {rule}",
                    f"sensitivity {_spread(summary, 'sensitivity')}, specificity {_spread(summary, 'specificity')}",
                    below,
                    "≤ 10% for the default",
                )
            )
        for band in bands:
            summary = simulate_next_films(labels, logits, patients, Rule.parse(DEFAULT_RULE), band, folds=args.folds)
            referral, short = summary["referral"], summary["decided_below_goal"]
            rows.append(
                (
                    f"{name}, {DEFAULT_RULE} with {band}",
                    f"referred {_spread(referral, 'referred')}; decided: sensitivity "
                    f"{_spread(referral, 'decided_sensitivity')}, specificity {_spread(referral, 'decided_specificity')}",
                    f"decided below 0.98 / 0.95 in {short['sensitivity']:.0%} / {short['specificity']:.0%} of splits",
                    "means ≥ 0.98 / 0.95, fewest referred",
                )
            )
    print(
        append_results(
            "Threshold rules and referral bands: the site's next films simulated on the site sample",
            f"python -m bench.rules --folds {args.folds}" + "".join(f" --model {path}" for path in args.model or []),
            rows,
            f"Models: {', '.join(names)}. 200 splits of the {len(labels)} scored films by patient into a fit part and "
            f"a next part (1/{args.folds} of the patients); mean over splits and, in brackets, the 5th-95th percentile "
            "range.",
        )
    )


if __name__ == "__main__":
    main()
