"""How a model does on labelled films: the confusion matrix, ROC, precision-recall, reliability and risk-coverage.

A figure of several series (internal test beside each site) takes one tuple per series, in the order of
:data:`~pneumo_core.visualize.palette.SERIES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from pneumo_core.visualize.palette import BLUE, GREY, INK, PALE, SERIES

RocCurve = tuple[str, Sequence[float], Sequence[float], tuple[float, float]]
"""(name, false-positive rates, true-positive rates, the operating point as (1 − specificity, sensitivity))."""
ReliabilityCurve = tuple[str, Sequence[float], Sequence[float]]
"""(name, mean predicted probability per bin, observed frequency per bin)."""


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
            textfont={"size": 22, "color": ["white" if shade > 0.5 else INK for shade in shades]},
            marker={"symbol": "square", "size": 110, "color": shades, "colorscale": [[0, PALE], [1, BLUE]], "cmin": 0, "cmax": 1},
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


def roc_curves(curves: Sequence[RocCurve], title: str = "ROC, each operating point an ×") -> go.Figure:
    """ROC curves, each with its operating point; the top-left corner again in an inset."""
    figure = go.Figure(
        layout={
            "title": title,
            "xaxis_title": "1 − specificity",
            "yaxis_title": "sensitivity",
            "height": 380,
            # the inset sits clear of the main axes' tick labels (its own labels once interleaved with them)
            "xaxis2": {"domain": [0.45, 0.95], "anchor": "y2", "range": [0, 0.3], "title": {"text": "zoom", "standoff": 2}},
            "yaxis2": {"domain": [0.3, 0.72], "anchor": "x2", "range": [0.8, 1.0]},
            "legend": {"orientation": "h", "y": -0.25},
        }
    )
    for colour, (name, fpr, tpr, point) in zip(SERIES, curves):
        for (x_axis, y_axis), legend in ((("x", "y"), True), (("x2", "y2"), False)):
            figure.add_scatter(
                x=list(fpr),
                y=list(tpr),
                mode="lines",
                name=name,
                line={"color": colour},
                showlegend=legend,
                xaxis=x_axis,
                yaxis=y_axis,
            )
            figure.add_scatter(
                x=[point[0]],
                y=[point[1]],
                mode="markers",
                marker={"size": 12, "color": colour, "symbol": "x"},
                name=f"{name}: operating point",
                showlegend=False,  # the × is said in the title; a legend entry per point was cut on narrow screens
                xaxis=x_axis,
                yaxis=y_axis,
            )
    return figure


def precision_recall_curve(
    recall: Sequence[float], precision: Sequence[float], point: tuple[float, float], average_precision: float
) -> go.Figure:
    """The precision-recall curve with the operating point (sensitivity, precision) marked."""
    figure = go.Figure(
        layout={
            "title": f"Precision-recall (AP {average_precision:.3f})",
            "xaxis_title": "recall (sensitivity)",
            "yaxis_title": "precision (PPV)",
        }
    )
    figure.add_scatter(x=list(recall), y=list(precision), mode="lines", name="PR", line={"color": BLUE})
    figure.add_scatter(x=[point[0]], y=[point[1]], mode="markers", marker_size=12, name="operating point")
    return figure


def reliability_curves(curves: Sequence[ReliabilityCurve], title: str = "Reliability") -> go.Figure:
    """Predicted against observed frequency: the probabilities are calibrated where a curve follows the diagonal."""
    figure = go.Figure(
        layout={
            "title": title,
            "xaxis_title": "predicted P(pneumonia)",
            "yaxis_title": "observed frequency",
            "xaxis_range": [0, 1],
            "yaxis_range": [0, 1],
            "height": 380,
            "legend": {"orientation": "h", "y": -0.25},
        }
    )
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": GREY}, name="perfect")
    for colour, (name, predicted, observed) in zip(SERIES, curves):
        figure.add_scatter(x=list(predicted), y=list(observed), mode="lines+markers", name=name, line={"color": colour})
    return figure


def risk_coverage_figure(coverage: Sequence[float], risk: Sequence[float], band_point: tuple[float, float]) -> go.Figure:
    """Error rate of the decided films against the share decided, for bands widening around the threshold, with the
    operating point's own band marked at ``band_point`` (coverage, risk)."""
    figure = go.Figure(
        layout={
            "title": "Risk–coverage: error among decided films as the referral band widens",
            "xaxis_title": "coverage (share of films decided)",
            "yaxis_title": "error rate of decided films",
            "xaxis": {"range": [0, 1.02], "tickformat": ".0%"},
        }
    )
    figure.add_scatter(x=list(coverage), y=list(risk), mode="lines+markers", name="bands around the threshold")
    figure.add_scatter(x=[band_point[0]], y=[band_point[1]], mode="markers", marker_size=12, name="this band")
    return figure
