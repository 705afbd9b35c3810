"""Monitoring: drift of what comes in against validation, over the rows of the monitoring store.

Every entry point that answers films (the app's Classify page, the REST API) records them in the store
(:func:`pneumo_core.operations.monitoring_store.record`): per film the time, where it was answered, the model (name and
SHA-256), the operating point, the verdict and decision, the calibrated probability and raw logit, the number of
warnings, the feature distance to the training films, two image statistics and the latency; nothing identifying.

**Drift** (:func:`drift_report`) compares a window's feature distances and logits with the served model's
validation films (the same population the threshold and the not-an-X-ray limit were set on), each by the
population stability index over ten validation-quantile bins and by the two-sample Kolmogorov-Smirnov test.
A signal alerts when PSI ≥ :data:`PSI_ALERT` (the usual "significant shift" rule of thumb) or the KS p-value
is below :data:`KS_ALPHA`, given at least :data:`MIN_ANSWERS` films; these are conventions, not values
tuned on any data set.
"""

from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pneumo_core.operations.monitoring_store import StoreLocation, answers

PSI_ALERT = 0.25
KS_ALPHA = 0.001
MIN_ANSWERS = 50
PSI_BINS = 10


@dataclass(frozen=True)
class Signal:
    """One monitored quantity of a window against its validation reference."""

    name: str
    n: int
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None

    @property
    def alert(self) -> bool:
        if self.n < MIN_ANSWERS or self.psi is None:
            return False
        return self.psi >= PSI_ALERT or self.ks_pvalue < KS_ALPHA

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": self.n,
            "psi": self.psi,
            "ks_statistic": self.ks_statistic,
            "ks_pvalue": self.ks_pvalue,
            "alert": self.alert,
        }


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over the reference's quantile bins: Σ (c − r) · ln(c / r) of the two bin shares (0.5-count smoothing)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) + 0.5
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) + 0.5
    ref_share, cur_share = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def compare(name: str, reference: np.ndarray, current: np.ndarray) -> Signal:
    from scipy.stats import ks_2samp

    current = np.asarray([value for value in current if value is not None], np.float64)
    if len(current) == 0 or reference is None or len(reference) == 0:
        return Signal(name, len(current), None, None, None)
    test = ks_2samp(np.asarray(reference, np.float64), current)
    return Signal(name, len(current), population_stability_index(reference, current), float(test.statistic), float(test.pvalue))


def model_window(
    since: float | None, model_sha256: str, location: StoreLocation | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """(the rows of the monitoring store since a time answered by the model with this SHA-256, how many rows other
    models answered)."""
    rows = answers(since, location)
    mine = rows["model_sha256"] == model_sha256
    return {name: values[mine] for name, values in rows.items()}, int((~mine).sum())


def validation_reference(model_dir: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(feature distances, logits) of the model's validation films: the reference a window is compared with."""
    from pneumo_core.serving.ood import FeatureDensity
    from pneumo_core.store.model_dir import EVALUATION_DIR

    density = FeatureDensity.load(model_dir)
    path = Path(model_dir) / EVALUATION_DIR / "val_predictions.csv"
    logits = None
    if path.is_file():
        with path.open() as handle:
            logits = np.array([float(row["logit"]) for row in csv.DictReader(handle)])
    return (density.reference if density else None), logits


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date/time (UTC when it names no zone), as a Unix time."""
    from datetime import UTC, datetime

    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([dhm])", text.strip())
    if match:
        seconds = float(match[1]) * {"d": 86400.0, "h": 3600.0, "m": 60.0}[match[2]]
        return (now or time.time()) - seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration such as 7d, 12h or 30m, or a date such as 2026-12-01") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def drift_report(window: dict[str, np.ndarray], reference_distances: np.ndarray, reference_logits: np.ndarray) -> dict:
    """``{"answers", "verdicts", "decisions", "drift": {"alert", "signals": [...], "withheld_left_out", "rule"}}`` for
    a window of stored rows (``decisions``: NORMAL, PNEUMONIA, REFER; rows stored before decisions were recorded are
    not counted). Drift is measured on the X-rays answered: films withheld as not an X-ray are counted apart."""
    verdicts = {name: int(np.sum(window["verdict"] == name)) for name in ("NORMAL", "PNEUMONIA", "withheld")}
    decisions = {name: int(np.sum(window["decision"] == name)) for name in ("NORMAL", "PNEUMONIA", "REFER")}
    xrays = window["verdict"] != "withheld"
    signals = [
        compare("feature distance", reference_distances, window["distance"][xrays]),
        compare("logit", reference_logits, window["logit"][xrays]),
    ]
    return {
        "answers": int(len(window["time"])),
        "verdicts": verdicts,
        "decisions": decisions,
        "drift": {
            "alert": any(signal.alert for signal in signals),
            "signals": [signal.as_json() for signal in signals],
            "withheld_left_out": verdicts["withheld"],
            "rule": f"a signal alerts when PSI ≥ {PSI_ALERT} or KS p < {KS_ALPHA}, with at least {MIN_ANSWERS} films; "
            "reference: the served model's validation films",
        },
    }


def drift_verdict(report: dict) -> tuple[str, str]:
    """The drift report's headline: ``("alert" | "waiting" | "clear", sentence)``. "clear" only when every signal
    with data (a model without a feature reference has no distances) was judged on at least :data:`MIN_ANSWERS`
    films: films withheld as not an X-ray count for no signal, so they never bring a window to the minimum."""
    drift = report["drift"]
    judged = min((signal["n"] for signal in drift["signals"] if signal["n"]), default=0)
    if drift["alert"]:
        return "alert", "**Drift alert**: the films answered differ from the validation films."
    if judged < MIN_ANSWERS:
        return "waiting", f"Not enough films yet to judge drift ({judged} of {MIN_ANSWERS} chest X-rays answered)."
    return "clear", "No drift: the films answered look like the validation films."
