"""Small display pieces shared by pages."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import streamlit as st

from pneumo_core import DISCLAIMER
from pneumo_core.serving.answers import Prediction

REFER_ASKS = "have a radiologist read this film"
"""What a REFER decision asks of the reader, in the same words on every surface (page, table, CSV, PDF)."""
CALM_BLUE, CALM_AMBER, GREY = "#1f5f8b", "#b7791f", "#8a99a6"


def operating_point_label(operating_point: str | None) -> str:
    """``site:NAME`` → "site profile NAME"; ``validation`` → "validation threshold"."""
    if operating_point and operating_point.startswith("site:"):
        return f"site profile {operating_point.removeprefix('site:')}"
    return {"validation": "validation threshold", "manual": "threshold set by hand"}.get(operating_point or "", "unknown")


def disclaimer_banner() -> None:
    st.caption(f":material/info: **{DISCLAIMER}** Results are for demonstration and research only.")


def probability_scale(prediction: Prediction) -> go.Figure:
    """A 0–1 scale with P(pneumonia), the operating threshold and the referral band around it."""
    t, p = prediction.threshold, prediction.probability
    figure = go.Figure()
    # Shapes are drawn below the marker (Plotly draws shapes above traces unless told otherwise).
    figure.add_shape(type="rect", x0=0, x1=1, y0=0, y1=1, fillcolor="#eef2f5", line_width=0, layer="below")
    low, high = prediction.band
    band = "rgba(183,121,31,0.25)"
    figure.add_shape(type="rect", x0=low, x1=high, y0=0, y1=1, fillcolor=band, line_width=0, layer="below")
    figure.add_shape(type="line", x0=t, x1=t, y0=-0.2, y1=1.2, line={"color": GREY, "dash": "dash", "width": 2}, layer="below")
    colour = CALM_AMBER if prediction.referred else CALM_BLUE
    figure.add_scatter(
        x=[p],
        y=[0.5],
        mode="markers+text",
        marker={"size": 18, "color": colour, "line": {"width": 2, "color": "white"}},
        text=[f"{p:.1%}"],
        textposition="bottom center",
        textfont={"color": colour, "size": 14},
        cliponaxis=False,  # a label at 0% or 99% stays whole past the plot's edge
        hovertemplate="P(pneumonia) = %{x:.3f}<extra></extra>",
    )
    figure.add_annotation(x=t, y=1.45, text=f"threshold {t:.1%}", showarrow=False, font={"size": 13, "color": GREY})
    figure.update_layout(
        height=150,
        margin={"l": 36, "r": 36, "t": 28, "b": 30},  # room for "0%" and "100%", centred on the plot's edges
        showlegend=False,
        xaxis={
            "range": [-0.02, 1.02],
            "tickvals": [0, 0.25, 0.5, 0.75, 1],
            "tickformat": ".0%",
            "tickfont": {"size": 13},
            "title": None,
            "automargin": True,
        },
        yaxis={"visible": False, "range": [-0.9, 1.7]},
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return figure


def decision_words(prediction: Prediction) -> str:
    """The decision in the words every surface uses (page, table, CSV, PDF): the class, or the referral and why."""
    if prediction.referred:
        return f"REFER: {REFER_ASKS} (the model leans {prediction.label})"
    return prediction.decision


def probability_words(prediction: Prediction) -> str:
    """P(pneumonia) beside what it is judged against: the referral band when the film is referred ("61.2%, inside
    the referral band 46.5%–92.9%"), else the threshold ("86.4%, below the threshold of 86.5%")."""
    if prediction.referred:
        low, high = prediction.band
        return f"{prediction.probability:.1%}, inside the referral band {low:.1%}–{high:.1%}"
    side = "at or above" if prediction.probability >= prediction.threshold else "below"
    return f"{prediction.probability:.1%}, {side} the threshold of {prediction.threshold:.1%}"


def promise_table_words(promise: dict | None) -> str | None:
    """A site profile's promise in plain words, one line (None at the validation operating point)."""
    if not promise:
        return None
    return (
        f"Promised for this site's next {promise['next_films']} films ({promise['confidence']:.0%} confidence each): "
        f"at least {floor_percent(promise['sensitivity'])}% of films with pneumonia called PNEUMONIA by the threshold, "
        f"at least {floor_percent(1 - promise['missed_by_normal'])}% flagged or referred; at most "
        f"{ceil_percent(promise['normal_called_pneumonia'])}% of films without pneumonia called PNEUMONIA; at most "
        f"{ceil_percent(promise['referred'])}% of films referred."
    )


def floor_percent(share: float) -> int:
    """A share as a whole percentage rounded down (what an "at least" promise may say)."""
    return math.floor(100 * share + 1e-9)


def ceil_percent(share: float) -> int:
    """A share as a whole percentage rounded up (what an "at most" promise may say)."""
    return math.ceil(100 * share - 1e-9)


def verdict_text(prediction: Prediction) -> str:
    """The decision as the page's headline (Markdown)."""
    if prediction.referred:
        return f"**REFER**: {REFER_ASKS} (the model leans {prediction.label})"
    return f"**{prediction.decision}**"
