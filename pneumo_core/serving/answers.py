"""What an answer is: a film's prediction at an operating point, a file's outcome, and the one record format
every entry point prints or returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pneumo_core import CLASS_NAMES
from pneumo_core.common.decisions import REFER, decide, promise_sentence
from pneumo_core.common.logits import log_odds, sigmoid
from pneumo_core.common.network_outputs import LastBlock

DEFAULT_REFERRAL_LOG_ODDS = 1.0
"""Without a site profile's fitted band, films whose log-odds lie within this distance of the threshold's (odds within
a factor e of it) are referred."""


def default_band(threshold: float) -> tuple[float, float]:
    """The referral band without a fitted one: :data:`DEFAULT_REFERRAL_LOG_ODDS` either side of the threshold."""
    centre = log_odds(min(max(threshold, 1e-6), 1 - 1e-6))
    low, high = sigmoid(centre + np.array([-DEFAULT_REFERRAL_LOG_ODDS, DEFAULT_REFERRAL_LOG_ODDS]))
    return float(low), float(high)


@dataclass(frozen=True)
class Prediction:
    probability: float  # calibrated P(PNEUMONIA)
    threshold: float
    logit: float
    fitted_band: tuple[float, float] | None = None  # [low, high): a site profile's band; None, the default around the threshold

    @property
    def label(self) -> str:
        """The binary verdict at the threshold."""
        return CLASS_NAMES[int(self.probability >= self.threshold)]

    @property
    def band(self) -> tuple[float, float]:
        """The probabilities ``[low, high)`` referred: the site profile's band (see
        :class:`~pneumo_core.operating_point.rules.ReferralRule`), else :data:`DEFAULT_REFERRAL_LOG_ODDS` around the
        threshold."""
        return self.fitted_band if self.fitted_band is not None else default_band(self.threshold)

    @property
    def decision(self) -> str:
        """NORMAL below the band, PNEUMONIA from its upper edge, REFER inside it."""
        return decide(self.probability, *self.band)

    @property
    def referred(self) -> bool:
        return self.decision == REFER


@dataclass(frozen=True)
class Case:
    """One input file's outcome: its canonical image and prediction, or the reason it has none."""

    name: str
    canonical: np.ndarray | None = None
    prediction: Prediction | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    dicom_fields: dict[str, str] = field(default_factory=dict)
    block: LastBlock | None = None  # what the heat maps are computed from, when classified with_maps
    distance: float | None = None  # feature distance to the training X-rays (see pneumo_core.serving.ood), when known
    withheld: str | None = None  # why no verdict is given: clearly not a chest X-ray (see pneumo_core.serving.ood)

    @property
    def verdict(self) -> Prediction | None:
        """The prediction a person may be shown: None for an unreadable file or a withheld verdict."""
        return None if self.withheld else self.prediction


def answer_record(name: str, case: Case, operating_point: str, promise: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one answer format of every entry point (CLI ``predict``, REST API): ``file``, ``label`` (the binary verdict
    at the threshold), ``decision`` (NORMAL, PNEUMONIA or REFER), ``probability``, ``logit`` (the model's raw logit,
    before any temperature), ``threshold``, ``referral_band``, ``operating_point``, ``promise`` (a site profile's
    promise behind the decision, in one sentence, when there is one) and ``warnings`` when any; ``label``,
    ``decision``, ``probability`` and ``logit`` are null when the film is clearly not a chest X-ray; or ``file`` and
    ``error`` when it could not be read."""
    if case.error or case.prediction is None:
        return {"file": name, "error": case.error or "The file could not be classified."}
    verdict = case.verdict
    record: dict[str, Any] = {
        "file": name,
        "label": verdict.label if verdict else None,
        "decision": verdict.decision if verdict else None,
        "probability": round(verdict.probability, 6) if verdict else None,
        "logit": round(verdict.logit, 6) if verdict else None,
        "threshold": round(case.prediction.threshold, 6),
        "referral_band": [round(edge, 6) for edge in case.prediction.band],
        "operating_point": operating_point,
    }
    sentence = promise_sentence(verdict.decision if verdict else None, promise)
    if sentence:
        record["promise"] = sentence
    if case.warnings:
        record["warnings"] = list(case.warnings)
    return record
