"""Which threshold rule and referral band keep their promises on a site's next films, and what do they give there?

    python -m bench.rules [--model DIR] [--rule RULE ...] [--band BAND ...] [--sites 2000] [--scores FILE.jsonl]

Scores the site sample with the served model (or reads score records), then runs, for every rule with the default
band and every band with the default rule, :func:`pneumo_core.operating_point.simulation.simulate_sites`: the
procedure that serves (:func:`~pneumo_core.operating_point.fit.fit_operating_point`) fitted on simulated sites of the
sample's size, drawn by patient, and checked on as many next films. Reported per combination: how often each promise
was kept (goal: at least 95%, to within the simulation's noise: ± 0.01 at 2,000 sites), the mean promise and the
mean of what the next films gave.

The goals, on average over the simulated sites: decided sensitivity ≥ 0.98, decided specificity ≥ 0.93, at most 20%
referred, specificity at the binary threshold ≥ 0.75; promised on average at least 0.93 sensitivity, 0.95 decided
sensitivity, 0.85 decided specificity and at most 30% referred. The choice of the default, written before the last
measurement: every promise kept; then the most goals on what the next films gave, a band whose low edge lies below
the threshold on the sample (so that films scoring like the sample's missed pneumonias are referred); then the highest
specificity at the threshold; then (added when ``band:0.92/0.9`` and ``band:0.92/0.85`` tied on all of that) the
fewest films referred.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import record_results
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.scoring import score_labelled_folder
from pneumo_core.operating_point.promises import AT_MOST, FIGURES
from pneumo_core.operating_point.rules import DEFAULT_BAND, DEFAULT_RULE, ReferralRule, Rule
from pneumo_core.operating_point.samples import sample_from_folder, sample_from_records
from pneumo_core.operating_point.simulation import SITES, simulate_sites
from pneumo_core.serving.predictor import Predictor

RULES = (DEFAULT_RULE, "sensitivity:0.97", "cost:5", "youden")
BANDS = (DEFAULT_BAND, "band:0.93/0.9", "band:0.915/0.89", "band:0.913/0.89", "band:none")
REALISED_GOALS = {"decided_sensitivity": 0.98, "decided_specificity": 0.93, "referred": 0.20, "specificity": 0.75}
PROMISE_GOALS = {"sensitivity": 0.93, "decided_sensitivity": 0.95, "decided_specificity": 0.85, "referred": 0.30}
SHORT = {
    "sensitivity": "sens",
    "specificity": "spec",
    "decided_sensitivity": "dec. sens",
    "decided_specificity": "dec. spec",
    "referred": "referred",
    "missed_by_normal": "missed by NORMAL",
    "normal_called_pneumonia": "normal called PNEUMONIA",
}


def _met(value: float, goal: float, at_most: bool) -> bool:
    return value <= goal if at_most else value >= goal


def row(summary: dict) -> tuple[str, str, str, str]:
    """One table row: the combination, what was promised and given, how often each promise held, the goals met."""
    figures = summary["figures"]
    given = ", ".join(
        f"{SHORT[name]} {figures[name]['promised']:.3f} / {figures[name]['realised']:.3f}"
        for name in FIGURES
        if name in REALISED_GOALS or name in PROMISE_GOALS
    )
    weakest = min(FIGURES, key=lambda name: figures[name]["kept"])
    kept = f"every promise in >= {figures[weakest]['kept']:.1%} of sites (the least: {SHORT[weakest]})"
    realised = sum(_met(figures[k]["realised"], g, k in AT_MOST) for k, g in REALISED_GOALS.items())
    promised = sum(_met(figures[k]["promised"], g, k in AT_MOST) for k, g in PROMISE_GOALS.items())
    return (
        f"{summary['rule']}, {summary['band_rule']}",
        f"promised / given: {given}",
        kept,
        f"goals met: {realised}/4 given, {promised}/4 promised",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None, help="a model directory (default: the served)")
    parser.add_argument("--rule", action="append", help=f"a threshold rule (repeatable; default: {', '.join(RULES)})")
    parser.add_argument("--band", action="append", help=f"a referral band (repeatable; default: {', '.join(BANDS)})")
    parser.add_argument("--sites", type=int, default=SITES, help=f"simulated sites per combination (default {SITES})")
    parser.add_argument("--scores", type=Path, default=None, help="score records instead of scoring the site sample")
    args = parser.parse_args()
    if args.scores:
        sample, name = sample_from_records(args.scores.read_text().splitlines()), f"scores {args.scores.name}"
    else:
        predictor = Predictor.load(args.model or locations().model_dir, operating_point="validation")
        sample = sample_from_folder(score_labelled_folder(predictor, site_sample_dir()))
        name = f"{predictor.metadata.get('name')} ({predictor.runtime})"
    combinations = [(Rule.parse(r), ReferralRule.parse(DEFAULT_BAND)) for r in args.rule or RULES]
    combinations += [(Rule.parse(DEFAULT_RULE), ReferralRule.parse(b)) for b in args.band or BANDS if b != DEFAULT_BAND]
    rows = []
    for rule, band_rule in combinations:
        summary = simulate_sites(sample.labels, sample.logits, sample.patients, rule, band_rule, args.sites)
        rows.append(row(summary))
        print(" | ".join(rows[-1]), flush=True)
    counts = sample.patient_counts()
    print(
        record_results(
            "Operating-point rules: their promises checked on simulated sites of the site sample's size",
            "python -m bench.rules" + (f" --sites {args.sites}" if args.sites != SITES else ""),
            rows,
            f"Model: {name}. {len(sample.labels)} films ({counts['NORMAL']} NORMAL and {counts['PNEUMONIA']} "
            f"PNEUMONIA patients); {args.sites} sites per row, drawn by patient at the sample's size, fitted as "
            "`calibrate` fits, checked on an independent draw of the same size. Promised / given: the mean promise "
            f"and the mean of what the next films gave. Goals: the docstring of bench/rules.py. Default: {DEFAULT_RULE}, "
            f"{DEFAULT_BAND}.",
        )
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
