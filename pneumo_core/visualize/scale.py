"""One answer on a 0–1 scale: P(pneumonia), the operating threshold and the referral band around it."""

from __future__ import annotations

import plotly.graph_objects as go

from pneumo_core.serving.answers import Prediction
from pneumo_core.visualize.palette import AMBER, BLUE, GREY, PALE

BAND_FILL = "rgba(183,121,31,0.25)"
"""The referral band: the amber of a REFER, faded."""


def probability_scale(prediction: Prediction) -> go.Figure:
    """A 0–1 scale with P(pneumonia) (amber when referred, else blue), the threshold and the referral band."""
    t, p = prediction.threshold, prediction.probability
    figure = go.Figure()
    # Shapes are drawn below the marker (Plotly draws shapes above traces unless told otherwise).
    figure.add_shape(type="rect", x0=0, x1=1, y0=0, y1=1, fillcolor=PALE, line_width=0, layer="below")
    low, high = prediction.band
    figure.add_shape(type="rect", x0=low, x1=high, y0=0, y1=1, fillcolor=BAND_FILL, line_width=0, layer="below")
    figure.add_shape(type="line", x0=t, x1=t, y0=-0.2, y1=1.2, line={"color": GREY, "dash": "dash", "width": 2}, layer="below")
    colour = AMBER if prediction.referred else BLUE
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
