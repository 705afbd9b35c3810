"""Metrics: how the served model does on its internal test split (patients never used for training or tuning)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pneumo_core import CLASS_NAMES
from pneumo_core.config import default_data_dir, mlflow_tracking_uri
from pneumo_core.data import class_root
from pneumo_core.evaluate import roc_pr_figures
from pneumo_core.metrics import CI_METRICS, bootstrap_intervals, classification_metrics, reliability_curve
from pneumo_core.predict import decode_canonical
from pneumo_core.registry import EVALUATION_DIR
from pneumo_core.saliency import overlay
from ui.resources import served_model
from ui.widgets import clickable_confusion

PUBLISHED = pd.DataFrame(
    [
        ("Kermany et al. 2018 (InceptionV3, ImageNet transfer)", 0.928, 0.932, 0.901, 0.968),
        ("MedMNIST v2 ResNet-50 (224 px)", 0.884, None, None, 0.962),
        ("Google AutoML Vision", 0.946, None, None, 0.991),
        ("Always answer PNEUMONIA", 0.625, 1.0, 0.0, 0.5),
    ],
    columns=["reference (official 624-image test split)", "accuracy", "sensitivity", "specificity", "ROC AUC"],
)
CELLS = {
    "False positives (NORMAL called PNEUMONIA)": (0, 1),
    "False negatives (PNEUMONIA called NORMAL)": (1, 0),
    "True positives": (1, 1),
    "True negatives": (0, 0),
}

st.title("Metrics of the served model")
served, problem = served_model()
if served is None:
    st.error(f"No model is available. {problem}")
    st.stop()
metadata = served.metadata
predictions_path = served.directory / EVALUATION_DIR / "test_predictions.csv"
if not predictions_path.is_file():
    st.error("This model has no evaluation artifacts (test_predictions.csv); re-run its evaluation.")
    st.stop()

frame = pd.read_csv(predictions_path)
labels = (frame["label"] == CLASS_NAMES[1]).astype(int).to_numpy()
scores = frame["probability"].to_numpy()
served_threshold = float(metadata["threshold"])
st.markdown(
    f"Internal test split: **{len(frame)} images** of patients held out from training, validation and threshold choice "
    f"(split by patient; data manifest `{metadata.get('data_manifest_sha256', '?')}`). "
    f"Operating threshold **{served_threshold:.3f}**, chosen on validation: {metadata.get('threshold_rule', '')}."
)


@st.cache_data(show_spinner="Bootstrapping confidence intervals…")
def intervals(model_sha: str, threshold: float) -> dict:
    return bootstrap_intervals(labels, scores, threshold, resamples=1000)


point = classification_metrics(labels, scores, served_threshold)
ci = intervals(metadata["model_sha256"], served_threshold)
st.subheader("At the operating threshold, with 95% bootstrap intervals")
st.dataframe(
    pd.DataFrame(
        [
            {"metric": name, "value": round(point[name], 4), "95% CI": f"{ci[name][0]:.3f} – {ci[name][1]:.3f}"}
            for name in CI_METRICS
        ]
    ),
    hide_index=True,
    width="content",
)
st.caption(
    f"Anchor: always answering PNEUMONIA scores accuracy {labels.mean():.3f} on this split (62.5% on the official test split)."
)

st.subheader("Explore the threshold")
st.info(
    "Exploration only: moving this slider does not change the served model. "
    "Thresholds are chosen on validation data, never on test data.",
    icon=":material/search:",
)
threshold = st.slider("Threshold on P(pneumonia)", 0.0, 1.0, served_threshold, 0.01, key="explore_threshold")
explored = classification_metrics(labels, scores, threshold)
columns = st.columns(4)
for column, (name, key) in zip(
    columns, [("Sensitivity", "sensitivity"), ("Specificity", "specificity"), ("PPV", "precision"), ("NPV", "npv")]
):
    column.metric(name, f"{explored[key]:.3f}", f"{explored[key] - point[key]:+.3f} vs served")
left, right = st.columns(2)
with left:
    clicked = st.plotly_chart(
        clickable_confusion(explored["tn"], explored["fp"], explored["fn"], explored["tp"], threshold),
        width="stretch",
        on_select="rerun",
        selection_mode="points",
        key="confusion",
    )
roc, pr = roc_pr_figures(frame, threshold)
right.plotly_chart(roc, width="stretch")
left.plotly_chart(pr, width="stretch")
predicted_mean, observed, counts = reliability_curve(labels, scores)
reliability = go.Figure(
    layout={
        "title": f"Reliability (ECE {point['ece']:.3f})",
        "xaxis_title": "predicted P(pneumonia)",
        "yaxis_title": "observed frequency",
        "xaxis_range": [0, 1],
        "yaxis_range": [0, 1],
    }
)
reliability.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#8a99a6"}, name="perfect")
reliability.add_scatter(x=predicted_mean, y=observed, mode="lines+markers", name="model", text=[f"{c} images" for c in counts])
right.plotly_chart(reliability, width="stretch")

st.subheader("Published results (not measured here)")
st.dataframe(PUBLISHED, hide_index=True, width="stretch")
st.caption("These numbers are on the official Kaggle test split, a different population from this internal split.")

st.subheader("What the model gets wrong")
points = (clicked or {}).get("selection", {}).get("points", []) if clicked else []
if points and points[0].get("customdata") and points[0]["customdata"] != st.session_state.get("applied_click"):
    truth_name, called_name = st.session_state["applied_click"] = points[0]["customdata"]  # a new click picks the cell
    st.session_state["cell"] = next(
        k for k, v in CELLS.items() if v == (CLASS_NAMES.index(truth_name), CLASS_NAMES.index(called_name))
    )
cell = st.radio("Show images from the confusion matrix cell", list(CELLS), horizontal=True, key="cell")
truth, called = CELLS[cell]
chosen = frame[(labels == truth) & ((scores >= threshold).astype(int) == called)]
st.caption(f"{len(chosen)} images at threshold {threshold:.2f}.")
root = class_root(default_data_dir(), "train")
if not (root / CLASS_NAMES[0]).is_dir():
    st.warning(f"The data folder ({default_data_dir()}) is not available, so the images themselves cannot be shown.")
    st.dataframe(chosen[["file", "label", "probability"]], hide_index=True)
else:
    shown = chosen.sort_values("probability", ascending=bool(called == 0)).head(8)
    readable = []
    for row in shown.itertuples():
        path = root / row.file
        canonical = decode_canonical(path.read_bytes()) if path.is_file() else None
        if isinstance(canonical, np.ndarray):
            readable.append((row, canonical))
        else:
            st.caption(f"{row.file}: not readable")
    if readable:
        canonicals = np.stack([canonical for _, canonical in readable])
        grid = st.columns(4)
        for i, ((row, canonical), cam) in enumerate(zip(readable, served.predictor.gradcams(canonicals))):  # one batched call
            grid[i % 4].image(overlay(canonical, cam, 0.35), caption=f"{row.file} · P={row.probability:.2f}", width="stretch")

st.subheader("Training runs (MLflow)")
try:
    import mlflow

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    runs = mlflow.search_runs(experiment_names=["pneumo"], max_results=50)
except Exception as error:  # noqa: BLE001 - any store problem is shown, not raised
    runs = None
    st.info(f"The MLflow store could not be read ({type(error).__name__}).")
if runs is not None and len(runs):
    wanted = [
        "tags.mlflow.runName",
        "status",
        "start_time",
        "params.recipe",
        "params.base_weights_used",
        "metrics.final_val_roc_auc",
        "metrics.internal_test_roc_auc",
        "metrics.internal_test_accuracy",
        "metrics.internal_test_sensitivity",
        "metrics.internal_test_specificity",
    ]
    st.dataframe(runs[[c for c in wanted if c in runs.columns]], hide_index=True, width="stretch")
    st.caption(f"Open the full store with `mlflow ui --backend-store-uri {mlflow_tracking_uri()}`.")
elif runs is not None:
    st.caption("No training runs recorded in this MLflow store yet.")
