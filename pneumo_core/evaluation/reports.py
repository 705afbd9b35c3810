"""Evaluate a model on labelled images: per-image predictions and decisions, metrics, confusion matrix, ROC/PR and
risk–coverage plots."""

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


CONFUSION_BLUE = "#1f5f8b"


def confusion_figure(tn: int, fp: int, fn: int, tp: int, title: str) -> go.Figure:
    """The confusion matrix as four large squares, the count on each readable (dark text on light cells, light on
    dark); each square carries ``customdata`` [truth, call], so a page can let a click pick a cell."""
    cells = [("NORMAL", "NORMAL", tn), ("NORMAL", "PNEUMONIA", fp), ("PNEUMONIA", "NORMAL", fn), ("PNEUMONIA", "PNEUMONIA", tp)]
    largest = max(1, tn, fp, fn, tp)
    shades = [n / largest for *_, n in cells]  # the fullest cell is darkest
    figure = go.Figure(
        go.Scatter(
            x=[f"called {called}" for _, called, _ in cells],
            y=[f"truly {truth}" for truth, _, _ in cells],
            mode="markers+text",
            text=[str(n) for *_, n in cells],
            textfont={"size": 22, "color": ["white" if shade > 0.5 else "#1d2730" for shade in shades]},
            marker={
                "symbol": "square",
                "size": 110,
                "color": shades,
                "colorscale": [[0, "#eef2f5"], [1, CONFUSION_BLUE]],
                "cmin": 0,
                "cmax": 1,
            },
            customdata=[[truth, called] for truth, called, _ in cells],
            hovertemplate="%{y}, %{x}: %{text} films<extra></extra>",
            cliponaxis=False,  # in a narrow column the squares reach past the axes: their counts must stay whole
        )
    )
    figure.update_layout(
        title=title,
        height=380,
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": ["called NORMAL", "called PNEUMONIA"]},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": ["truly PNEUMONIA", "truly NORMAL"]},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return figure


def roc_figure(frame: pd.DataFrame, threshold: float) -> go.Figure:
    """The ROC curve with the operating point marked."""
    labels, scores, point = _scored(frame, threshold)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    roc = go.Figure(
        layout={"title": f"ROC (AUC {point['roc_auc']:.3f})", "xaxis_title": "1 − specificity", "yaxis_title": "sensitivity"}
    )
    roc.add_scatter(x=fpr, y=tpr, mode="lines", name="ROC")
    roc.add_scatter(
        x=[1 - point["specificity"]], y=[point["sensitivity"]], mode="markers", marker_size=12, name="operating point"
    )
    return roc


def pr_figure(frame: pd.DataFrame, threshold: float) -> go.Figure:
    """The precision-recall curve with the operating point marked."""
    labels, scores, point = _scored(frame, threshold)
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    pr = go.Figure(
        layout={
            "title": f"Precision-recall (AP {point['pr_auc']:.3f})",
            "xaxis_title": "recall (sensitivity)",
            "yaxis_title": "precision (PPV)",
        }
    )
    pr.add_scatter(x=recall, y=precision, mode="lines", name="PR")
    pr.add_scatter(x=[point["sensitivity"]], y=[point["precision"]], mode="markers", marker_size=12, name="operating point")
    return pr


def _scored(frame: pd.DataFrame, threshold: float) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    labels = (frame["label"] == CLASS_NAMES[1]).astype(int).to_numpy()
    scores = frame["probability"].to_numpy()
    return labels, scores, classification_metrics(labels, scores, threshold)


def risk_coverage_figure(frame: pd.DataFrame, threshold: float, band: tuple[float, float]) -> go.Figure:
    """Error rate of the decided films against the share decided, for bands widening around the threshold, with the
    operating point's own band marked."""
    labels = (frame["label"] == CLASS_NAMES[1]).to_numpy()
    probabilities = frame["probability"].to_numpy()
    curve = risk_coverage(labels, probabilities, threshold)
    at_band = decided_metrics(labels, probabilities, *band)
    figure = go.Figure(
        layout={
            "title": "Risk–coverage: error among decided films as the referral band widens",
            "xaxis_title": "coverage (share of films decided)",
            "yaxis_title": "error rate of decided films",
            "xaxis": {"range": [0, 1.02], "tickformat": ".0%"},
        }
    )
    figure.add_scatter(x=curve["coverage"], y=curve["risk"], mode="lines+markers", name="bands around the threshold")
    figure.add_scatter(
        x=[1 - at_band["referred"]], y=[1 - at_band["decided_accuracy"]], mode="markers", marker_size=12, name="this band"
    )
    return figure


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
    figures = (
        (
            confusion_figure(*(metrics[k] for k in ("tn", "fp", "fn", "tp")), f"Confusion matrix (threshold {threshold:.3f})"),
            "confusion",
        ),
        (roc_figure(frame, threshold), "roc"),
        (pr_figure(frame, threshold), "pr"),
    )
    for figure, suffix in (*figures, (risk_coverage_figure(frame, threshold, band), "risk_coverage")):
        figure.write_html(out_dir / f"{name}_{suffix}.html", include_plotlyjs="cdn")
    return metrics


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
