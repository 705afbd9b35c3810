"""An int8 copy of the serving graph, served only when it changes no answer that matters.

``python -m pneumo_core quantize [--model DIR] [--data-dir DIR] [--site FOLDER ...]``

Dynamic-range quantisation stores the convolution and dense weights as int8 (activations stay float32): a quarter
of the file and, with XNNPACK on this 2-core CPU, about 2.4 × faster at batch 1 (``bench/quantization.py``, which
also measures full-integer quantisation). :func:`check_int8` scores the model's internal test (the held-out
patients of its manifest) and any labelled site folders with both TFLite copies through the whole serving path, at
the operating point in use, and compares them. The int8 copy serves (runtime ``auto``) only if on every set the
verdicts agree on ≥ :data:`AGREEMENT_RULE` of the films and ROC AUC moves by ≤ :data:`AUC_RULE`;
the comparison is kept in the metadata as ``int8_check`` either way. Refit a site profile afterwards
(``calibrate``): its temperature and threshold then belong to the scores that are served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pneumo_core.common.logits import sigmoid
from pneumo_core.evaluation.scoring import FolderScores, score_films
from pneumo_core.store.model_dir import add_int8_copy, load_model_dir, record_in_metadata

AGREEMENT_RULE = 0.995
AUC_RULE = 0.002
RULE = f"verdicts agree on >= {AGREEMENT_RULE:.1%} of films and ROC AUC moves by <= {AUC_RULE} on every set"


@dataclass(frozen=True)
class Agreement:
    """How the int8 copy's answers compare with the float32 copy's on one labelled set."""

    films: int
    verdict_agreement: float  # share of films with the same verdict at the operating point
    auc_float32: float
    auc_int8: float
    max_probability_change: float
    warning_agreement: float  # share of films with the same not-an-X-ray warning (feature distance)

    @property
    def auc_change(self) -> float:
        return self.auc_int8 - self.auc_float32

    @property
    def holds(self) -> bool:
        return self.verdict_agreement >= AGREEMENT_RULE and abs(self.auc_change) <= AUC_RULE


def compare(float32: FolderScores, int8: FolderScores, temperature: float, threshold: float) -> Agreement:
    """The :class:`Agreement` of two scorings of the same films (probabilities at ``temperature``, verdicts at ``threshold``)."""
    from sklearn.metrics import roc_auc_score

    if float32.files != int8.files:
        raise ValueError("The two scorings are of different films.")
    reference, quantised = sigmoid(float32.logits / temperature), sigmoid(int8.logits / temperature)
    return Agreement(
        films=len(float32),
        verdict_agreement=float(np.mean((reference >= threshold) == (quantised >= threshold))),
        auc_float32=float(roc_auc_score(float32.labels, reference)),
        auc_int8=float(roc_auc_score(int8.labels, quantised)),
        max_probability_change=float(np.abs(quantised - reference).max()),
        warning_agreement=float(np.mean(float32.warned == int8.warned)),
    )


def check_int8(
    model_dir: Path, sets: dict[str, pd.DataFrame], progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Make the int8 copy, compare it with the float32 copy on each named set of films, and record the result
    (``int8_check`` in the metadata, with ``serves`` true only if the rule holds on every set). Returns the record."""
    from pneumo_core.modeling.graphs import export_tflite
    from pneumo_core.serving.predictor import Predictor

    model, metadata = load_model_dir(model_dir)
    flatbuffer = export_tflite(model, int(metadata["input_size"]), int8_weights=True)
    add_int8_copy(model_dir, flatbuffer, int8_check={"serves": False})  # a failed check below leaves it unserved
    float32, int8 = (Predictor.load(model_dir, runtime=runtime) for runtime in ("tflite", "tflite-int8"))
    results = {}
    for name, films in sets.items():
        scored = [score_films(predictor, films, progress) for predictor in (float32, int8)]
        results[name] = compare(*scored, float32.temperature, float32.threshold)
    check = {
        "serves": bool(results) and all(result.holds for result in results.values()),
        "rule": RULE,
        "operating_point": float32.operating_point,
        "threshold": float32.threshold,
        "temperature": float32.temperature,
        "sets": {name: {**asdict(result), "auc_change": result.auc_change} for name, result in results.items()},
        "checked": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    record_in_metadata(model_dir, int8_check=check)
    return check


def describe_check(metadata: dict[str, Any]) -> str | None:
    """One line for people: how the served int8 copy compares with float32 (None without a check)."""
    check = metadata.get("int8_check") or {}
    if not check.get("sets"):
        return None
    parts = [
        f"{name}: verdicts agree on {values['verdict_agreement']:.1%} of {values['films']} films, "
        f"ROC AUC {values['auc_float32']:.4f} → {values['auc_int8']:.4f}"  # a change rounds to a confusing -0.0000
        for name, values in check["sets"].items()
    ]
    return "; ".join(parts)
