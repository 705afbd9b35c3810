"""Figures and tables for site profiles: internal test beside each site, and the shift diagnostics.

Everything is drawn from stored aggregates (the model's metadata and evaluation CSV, the
profiles' metrics and curves): nothing is recomputed from films on a page visit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pneumo_core.common.logits import sigmoid
from pneumo_core.evaluation.metrics import classification_metrics
from pneumo_core.store.profiles import SiteProfile

HEADLINE = ("accuracy", "sensitivity", "specificity", "roc_auc")
PLAIN_NAMES = {
    "accuracy": "accuracy",
    "sensitivity": "sensitivity (recall)",
    "specificity": "specificity",
    "roc_auc": "ROC AUC",
    "precision": "precision (PPV)",
    "npv": "NPV",
    "f1": "F1",
    "pr_auc": "PR AUC (average precision)",
}
COLOURS = ("#1f5f8b", "#b7791f", "#4c8c4a", "#8a4f9e")


def _cell(value: float, interval: list[float] | tuple[float, float] | None) -> str:
    return f"{value:.3f}" + (f" ({interval[0]:.3f}–{interval[1]:.3f})" if interval else "")


def comparison_table(
    metadata: dict, profiles: list[SiteProfile], active: str, internal: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per data set and operating point: internal test, then each site at its own and the validation point,
    and (given the internal test's per-film logits) the internal test at each site's operating point."""
    test = metadata.get("metrics", {}).get("test", {})
    intervals = metadata.get("confidence_intervals", {}).get("test", {})
    rows = [
        {
            "data": f"internal test ({test['n']} films)" if "n" in test else "internal test",
            "operating point": f"validation {metadata['threshold']:.3f}",
            **{PLAIN_NAMES[k]: _cell(test[k], intervals.get(k)) for k in HEADLINE if k in test},
        }
    ]
    for profile in profiles:
        at_validation = profile.validation_operating_point
        serving = " (serving)" if profile.operating_point == active else ""
        rows.append(
            {
                "data": f"site {profile.name} ({profile.n} films)",
                "operating point": f"site profile {profile.threshold:.3f}{serving}",
                **{PLAIN_NAMES[k]: _cell(profile.metrics[k], profile.intervals.get(k)) for k in HEADLINE},
            }
        )
        promise = profile.promise
        if promise:
            rows.append(
                {
                    "data": f"site {profile.name}: promised for its next {promise['next_films']} films",
                    "operating point": f"site profile {profile.threshold:.3f}, {promise['confidence']:.0%} confidence",
                    PLAIN_NAMES["accuracy"]: "—",
                    PLAIN_NAMES["sensitivity"]: f"at least {promise['sensitivity']:.3f}",
                    PLAIN_NAMES["specificity"]: f"at least {promise['specificity']:.3f}",
                    PLAIN_NAMES["roc_auc"]: "—",
                }
            )
        rows.append(
            {
                "data": f"site {profile.name} ({profile.n} films)",
                "operating point": f"validation {metadata['threshold']:.3f}",
                **{PLAIN_NAMES[k]: f"{at_validation[k]:.3f}" for k in HEADLINE},
            }
        )
        if internal is not None:
            labels = (internal["label"] == "PNEUMONIA").to_numpy().astype(int)
            probabilities = sigmoid(internal["logit"].to_numpy(np.float32) / profile.temperature)
            at_site = classification_metrics(labels, probabilities, profile.threshold)
            rows.append(
                {
                    "data": f"internal test ({len(internal)} films)",
                    "operating point": f"site profile {profile.name} {profile.threshold:.3f}",
                    **{PLAIN_NAMES[k]: f"{at_site[k]:.3f}" for k in HEADLINE},
                }
            )
    return pd.DataFrame(rows)


def referral_table(profiles: list[SiteProfile]) -> pd.DataFrame:
    """Per site profile: its referral band, the share referred and the decided films' sensitivity and specificity, on
    the sample and as promised for its next films."""
    rows = []
    for profile in profiles:
        if not profile.referral:
            continue
        low, high = profile.band_edges
        sample, promise = profile.referral, profile.promise
        rows.append(
            {
                "site": profile.name,
                "referral band": f"{low:.3f} – {high:.3f}",
                "referred (sample)": f"{sample['referred']:.1%}",
                "decided sensitivity (sample)": f"{sample['decided_sensitivity']:.3f}",
                "decided specificity (sample)": f"{sample['decided_specificity']:.3f}",
                "referred (promised)": f"at most {promise['referred']:.1%}" if promise else "—",
                "decided sensitivity (promised)": f"at least {promise['decided_sensitivity']:.3f}" if promise else "—",
                "decided specificity (promised)": f"at least {promise['decided_specificity']:.3f}" if promise else "—",
            }
        )
    return pd.DataFrame(rows)


def roc_comparison(curves: list[tuple[str, list[float], list[float], tuple[float, float]]]) -> go.Figure:
    """ROC curves, each with its operating point (1 − specificity, sensitivity); the top-left corner in an inset."""
    figure = go.Figure(
        layout={
            "title": "ROC, each operating point an ×",
            "xaxis_title": "1 − specificity",
            "yaxis_title": "sensitivity",
            "height": 380,
            # the inset sits clear of the main axes' tick labels (its own labels once interleaved with them)
            "xaxis2": {"domain": [0.45, 0.95], "anchor": "y2", "range": [0, 0.3], "title": {"text": "zoom", "standoff": 2}},
            "yaxis2": {"domain": [0.3, 0.72], "anchor": "x2", "range": [0.8, 1.0]},
            "legend": {"orientation": "h", "y": -0.25},
        }
    )
    for colour, (name, fpr, tpr, point) in zip(COLOURS, curves):
        for axes, legend in ((("x", "y"), True), (("x2", "y2"), False)):
            figure.add_scatter(
                x=fpr, y=tpr, mode="lines", name=name, line={"color": colour}, showlegend=legend, xaxis=axes[0], yaxis=axes[1]
            )
            figure.add_scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                marker={"size": 12, "color": colour, "symbol": "x"},
                name=f"{name}: operating point",
                showlegend=False,  # the × is said in the title; a legend entry per point was cut on narrow screens
                xaxis=axes[0],
                yaxis=axes[1],
            )
    return figure


def reliability_comparison(curves: list[tuple[str, list[float], list[float]]]) -> go.Figure:
    figure = go.Figure(
        layout={
            "title": "Reliability",
            "xaxis_title": "predicted P(pneumonia)",
            "yaxis_title": "observed frequency",
            "xaxis_range": [0, 1],
            "yaxis_range": [0, 1],
            "height": 380,
            "legend": {"orientation": "h", "y": -0.25},
        }
    )
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#8a99a6"}, name="perfect")
    for colour, (name, predicted, observed) in zip(COLOURS, curves):
        figure.add_scatter(x=predicted, y=observed, mode="lines+markers", name=name, line={"color": colour})
    return figure


def probability_histograms(profile: SiteProfile) -> go.Figure:
    histogram = profile.diagnostics["probability_histogram"]
    centres = np.convolve(histogram["edges"], [0.5, 0.5], "valid")
    figure = go.Figure(
        layout={
            "title": f"P(pneumonia) per true class, site {profile.name}",
            "barmode": "overlay",
            "xaxis_title": "calibrated P(pneumonia)",
            "yaxis_title": "films",
            "height": 320,
        }
    )
    for colour, name in zip(COLOURS, ("NORMAL", "PNEUMONIA")):
        figure.add_bar(x=centres, y=histogram[name], name=f"true {name}", marker_color=colour, opacity=0.6, width=0.05)
    figure.add_vline(x=profile.threshold, line_dash="dash", annotation_text="site threshold")
    return figure


def distance_histograms(profile: SiteProfile, limit: float | None) -> go.Figure:
    histogram = profile.diagnostics["distance_histogram"]
    centres = np.convolve(histogram["edges"], [0.5, 0.5], "valid")
    figure = go.Figure(
        layout={
            "title": "Feature distance to the training X-rays",
            "barmode": "overlay",
            "xaxis_title": "distance",
            "yaxis_title": "share of films",
            "height": 320,
        }
    )
    for colour, key, name in (
        (COLOURS[0], "reference", "validation (training collection)"),
        (COLOURS[1], "site", f"site {profile.name}"),
    ):
        if key in histogram:
            counts = np.asarray(histogram[key], dtype=float)
            figure.add_bar(x=centres, y=counts / max(1.0, counts.sum()), name=name, marker_color=colour, opacity=0.6)
    if limit:
        figure.add_vline(x=limit, line_dash="dash", annotation_text="not-an-X-ray limit")
    return figure
