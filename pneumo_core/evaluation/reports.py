"""Evaluate a model on labelled images: per-image predictions and decisions, metrics, and the figures written beside
them (confusion matrix, ROC, precision-recall, risk–coverage; drawn by :mod:`pneumo_core.visualize`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn import metrics as skm

from pneumo_core import CLASS_NAMES
from pneumo_core.common.decisions import decide, decided_metrics, risk_coverage
from pneumo_core.common.logits import sigmoid
from pneumo_core.evaluation.metrics import classification_metrics
from pneumo_core.serving.answers import default_band
from pneumo_core.visualize.performance import confusion_figure, precision_recall_curve, risk_coverage_figure, roc_curves


def predictions_frame(
    files: list[str], labels: np.ndarray, logits: np.ndarray, temperature: float, threshold: float
) -> pd.DataFrame:
    """One row per image: file, true label, calibrated P(PNEUMONIA), predicted label, correct."""
    probability = sigmoid(np.asarray(logits) / temperature)
    predicted = (probability >= threshold).astype(int)
    return pd.DataFrame(
        {
            "file": files,
            "label": [CLASS_NAMES[i] for i in labels],
            "logit": logits,
            "probability": probability,  # unrounded: metrics recomputed from the CSV must match the threshold exactly
            "predicted": [CLASS_NAMES[i] for i in predicted],
            "correct": predicted == np.asarray(labels),
        }
    )


def metrics_of(frame: pd.DataFrame, threshold: float) -> dict[str, float]:
    return classification_metrics((frame["label"] == CLASS_NAMES[1]).to_numpy(), frame["probability"].to_numpy(), threshold)


def write_evaluation(
    frame: pd.DataFrame, threshold: float, out_dir: Path, name: str, band: tuple[float, float] | None = None
) -> dict[str, float]:
    """Write ``{name}_predictions.csv`` (with each film's decision), ``{name}_metrics.json`` (the binary metrics and
    the referral band's: by default the one around the threshold) and the plots; return the metrics."""
    band = band or default_band(threshold)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = (frame["label"] == CLASS_NAMES[1]).to_numpy()
    frame = frame.assign(decision=[decide(p, *band) for p in frame["probability"]])
    metrics = {
        **metrics_of(frame, threshold),
        "referral_band": list(band),
        **decided_metrics(labels, frame["probability"], *band),
    }
    frame.to_csv(out_dir / f"{name}_predictions.csv", index=False)
    (out_dir / f"{name}_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for suffix, figure in evaluation_figures(labels, frame["probability"].to_numpy(), threshold, band, metrics).items():
        figure.write_html(out_dir / f"{name}_{suffix}.html", include_plotlyjs="cdn")
    return metrics


def evaluation_figures(
    labels: np.ndarray, probabilities: np.ndarray, threshold: float, band: tuple[float, float], metrics: dict[str, float]
) -> dict[str, go.Figure]:
    """The figures written beside an evaluation, by file suffix: confusion matrix, ROC, precision-recall and
    risk-coverage, each with the operating point (``metrics``, at ``threshold`` and ``band``) marked."""
    fpr, tpr, _ = skm.roc_curve(labels, probabilities)
    precision, recall, _ = skm.precision_recall_curve(labels, probabilities)
    curve = risk_coverage(labels, probabilities, threshold)
    counts = (metrics[k] for k in ("tn", "fp", "fn", "tp"))
    return {
        "confusion": confusion_figure(*counts, f"Confusion matrix (threshold {threshold:.3f})"),
        "roc": roc_curves(
            [("model", fpr, tpr, (1 - metrics["specificity"], metrics["sensitivity"]))], f"ROC (AUC {metrics['roc_auc']:.3f})"
        ),
        "pr": precision_recall_curve(recall, precision, (metrics["sensitivity"], metrics["precision"]), metrics["pr_auc"]),
        "risk_coverage": risk_coverage_figure(
            curve["coverage"], curve["risk"], (1 - metrics["referred"], 1 - metrics["decided_accuracy"])
        ),
    }


def format_metrics_table(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one column per split name, one row per metric."""
    keys = [
        "n",
        "accuracy",
        "sensitivity",
        "specificity",
        "precision",
        "npv",
        "f1",
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "tp",
        "fp",
        "tn",
        "fn",
    ]
    names = list(rows)
    lines = [f"{'metric':<12}" + "".join(f"{n:>12}" for n in names)]
    for key in keys:
        cells = []
        for n in names:
            value = rows[n][key]
            cells.append(f"{value:>12d}" if isinstance(value, int) else f"{value:>12.4f}")
        lines.append(f"{key:<12}" + "".join(cells))
    return "\n".join(lines)
