"""How values are spread: a site's probabilities and feature distances, the monitored answers against the
reference, answers per day, where two models disagree, and a training run's per-epoch curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from pneumo_core.store.profiles import SiteProfile
from pneumo_core.visualize.palette import DECISION_COLOURS, SERIES


def _centres(edges: Sequence[float]) -> np.ndarray:
    return np.convolve(edges, [0.5, 0.5], "valid")


def probability_histograms(profile: SiteProfile) -> go.Figure:
    """The site sample's calibrated P(pneumonia) per true class (stored with the profile), the site threshold marked."""
    histogram = profile.diagnostics["probability_histogram"]
    figure = go.Figure(
        layout={
            "title": f"P(pneumonia) per true class, site {profile.name}",
            "barmode": "overlay",
            "xaxis_title": "calibrated P(pneumonia)",
            "yaxis_title": "films",
            "height": 320,
        }
    )
    for colour, name in zip(SERIES, ("NORMAL", "PNEUMONIA")):
        figure.add_bar(
            x=_centres(histogram["edges"]), y=histogram[name], name=f"true {name}", marker_color=colour, opacity=0.6, width=0.05
        )
    figure.add_vline(x=profile.threshold, line_dash="dash", annotation_text="site threshold")
    return figure


def distance_histograms(profile: SiteProfile, limit: float | None) -> go.Figure:
    """Feature distances to the training X-rays: the validation films' beside the site's, the not-an-X-ray limit marked."""
    histogram = profile.diagnostics["distance_histogram"]
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
        (SERIES[0], "reference", "validation (training collection)"),
        (SERIES[1], "site", f"site {profile.name}"),
    ):
        if key in histogram:
            counts = np.asarray(histogram[key], dtype=float)
            figure.add_bar(
                x=_centres(histogram["edges"]), y=counts / max(1.0, counts.sum()), name=name, marker_color=colour, opacity=0.6
            )
    if limit:
        figure.add_vline(x=limit, line_dash="dash", annotation_text="not-an-X-ray limit")
    return figure


def reference_and_answered(title: str, reference: np.ndarray | None, answered: np.ndarray, x_title: str) -> go.Figure:
    """The answered films' values beside the validation films' (the reference), each as shares of its own films."""
    figure = go.Figure(layout={"title": title, "barmode": "overlay", "xaxis_title": x_title, "yaxis_title": "share"})
    if reference is not None:
        figure.add_histogram(x=reference, histnorm="probability", name="validation (reference)", opacity=0.55, nbinsx=30)
    figure.add_histogram(x=answered, histnorm="probability", name="answered", opacity=0.55, nbinsx=30)
    return figure


def answers_per_day(days: Sequence[str], counts: Mapping[str, Sequence[int]]) -> go.Figure:
    """Stacked bars: for each day (named by its date), how many films got each decision."""
    figure = go.Figure(layout={"title": "Answers per day, by decision", "barmode": "stack", "yaxis_title": "films"})
    for decision, per_day in counts.items():
        figure.add_bar(x=list(days), y=list(per_day), name=decision, marker_color=DECISION_COLOURS.get(decision))
    figure.update_xaxes(type="category")  # one bar per day, named by its date (a time axis zooms into a lone day)
    return figure


def disagreements(served: Sequence[float], challenger: Sequence[float]) -> go.Figure:
    """The films two models answer differently: the served model's probability of PNEUMONIA against the challenger's."""
    figure = go.Figure(
        layout={
            "title": "Where they disagree: the two probabilities of PNEUMONIA",
            "xaxis_title": "served model",
            "yaxis_title": "challenger",
            "xaxis_range": [0, 1],
            "yaxis_range": [0, 1],
        }
    )
    figure.add_scatter(x=list(served), y=list(challenger), mode="markers", name="film")
    return figure


def epoch_curves(epochs: Sequence[int], curves: Mapping[str, Sequence[float]]) -> go.Figure:
    """A training run's per-epoch values (loss, validation loss, AUC, ...), one line each."""
    figure = go.Figure(layout={"title": "Per-epoch curves", "xaxis_title": "epoch", "height": 320})
    for name, values in curves.items():
        figure.add_scatter(x=list(epochs), y=list(values), mode="lines+markers", name=name)
    return figure
