"""Metrics: how the served model does on its internal test split (patients never used for training or tuning)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st
from sklearn.metrics import precision_recall_curve as precision_recall_curve_of
from sklearn.metrics import roc_curve

from pneumo_core import CLASS_NAMES
from pneumo_core.common.films import class_root
from pneumo_core.common.logits import sigmoid
from pneumo_core.config import locations
from pneumo_core.evaluation.metrics import CI_METRICS, classification_metrics, reliability_curve
from pneumo_core.jobs.history import recent_runs
from pneumo_core.serving.loading import load_canonical_films
from pneumo_core.serving.overlay import overlay
from pneumo_core.store.model_dir import EVALUATION_DIR
from pneumo_core.store.profiles import ProfileError, list_profiles, load_profile
from pneumo_core.visualize.performance import confusion_figure, precision_recall_curve, reliability_curves, roc_curves
from ui.resources import Served, served_model_or_stop
from ui.site_tables import PLAIN_NAMES, comparison_table, referral_table
from ui.widgets import operating_point_label, promise_table_words

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


def external_validity(
    served: Served, frame: pd.DataFrame, labels: np.ndarray, scores: np.ndarray, roc: tuple[np.ndarray, np.ndarray]
) -> None:
    """Internal test and every site profile side by side: metrics with intervals, confusion, ROC, reliability."""
    metadata, active = served.metadata, served.predictor.operating_point
    profiles = []
    for name in list_profiles(served.directory):
        try:
            profiles.append(load_profile(served.directory, name))
        except ProfileError as error:
            st.warning(str(error))
    st.subheader("Internal test and external sites")
    st.dataframe(comparison_table(metadata, profiles, active, frame), hide_index=True, width="stretch")
    referrals = referral_table(profiles)
    if len(referrals):
        st.markdown("**Referral bands**: films between the edges are referred to a radiologist instead of answered.")
        st.dataframe(referrals, hide_index=True, width="stretch")
    st.caption(
        "Brackets: 95% intervals by patient (exact for proportions, a patient bootstrap for ROC AUC). "
        "A site profile's temperature and threshold are fitted on "
        "that site's films, so its numbers there are optimistic for the site's future films; the validation rows show "
        "the same films at the threshold chosen on the training collection. The promised row is what the site profile "
        "promises for the site's next films, each figure at 95% confidence: what holds there, where the sample's own "
        "numbers are optimistic. A profile is for its site: the last rows "
        "show what it does to films of the training collection (fewer false alarms, more missed pneumonia)."
        + ("" if profiles else " No site profile yet: an operator can validate on a labelled folder on the Site profiles page.")
    )
    internal = classification_metrics(labels, scores, float(metadata["threshold"]))
    columns = st.columns(1 + len(profiles[:3]))
    columns[0].plotly_chart(
        confusion_figure(
            internal["tn"],
            internal["fp"],
            internal["fn"],
            internal["tp"],
            f"internal test, threshold {metadata['threshold']:.3f}",
        ),
        width="stretch",
        key="confusion_internal",
    )
    for column, profile in zip(columns[1:], profiles):
        m = profile.metrics
        column.plotly_chart(
            confusion_figure(m["tn"], m["fp"], m["fn"], m["tp"], f"site {profile.name}, threshold {profile.threshold:.3f}"),
            width="stretch",
            key=f"confusion_{profile.name}",
        )
    predicted, observed, _ = reliability_curve(labels, scores)
    internal_point = (1 - internal["specificity"], internal["sensitivity"])
    rocs = [(f"internal test (threshold {metadata['threshold']:.3f})", *roc, internal_point)]
    reliabilities = [("internal test", predicted, observed)]
    for profile in profiles:
        diagnostics = profile.diagnostics
        point = (1 - profile.metrics["specificity"], profile.metrics["sensitivity"])
        name = f"site {profile.name} (threshold {profile.threshold:.3f})"
        rocs.append((name, diagnostics["roc"]["fpr"], diagnostics["roc"]["tpr"], point))
        reliabilities.append(
            (f"site {profile.name}", diagnostics["reliability"]["predicted"], diagnostics["reliability"]["observed"])
        )
    left, right = st.columns(2)
    left.plotly_chart(roc_curves(rocs), width="stretch", key="roc_sites")
    right.plotly_chart(reliability_curves(reliabilities), width="stretch", key="reliability_sites")


def stored_intervals_table(metadata: dict, point: dict, labels: np.ndarray) -> None:
    """The internal test's metrics at the validation threshold with the 95% intervals by patient stored with the model
    (never recomputed here)."""
    stored = metadata.get("confidence_intervals", {}).get("test", {})
    st.subheader(f"Internal test at the validation threshold {metadata['threshold']:.3f}, with 95% intervals")
    rows = [
        {
            "metric": PLAIN_NAMES.get(name, name),
            "value": round(point[name], 4),
            "95% interval": f"{stored[name][0]:.3f} – {stored[name][1]:.3f}" if name in stored else "not stored",
        }
        for name in CI_METRICS
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="content",
        column_config={"metric": st.column_config.TextColumn(width="medium")},  # "PR AUC (average precision)" whole
    )
    st.caption(
        f"Anchor: always answering PNEUMONIA scores accuracy {labels.mean():.3f} on this split "
        "(62.5% on the official test split)."
    )


def operating_points(served: Served) -> dict[str, tuple[float, float]]:
    """The operating points the explorer can start from, the serving one first: name → (temperature, threshold)."""
    predictor, metadata = served.predictor, served.metadata
    points = {f"serving: {operating_point_label(predictor.operating_point)}": (predictor.temperature, predictor.threshold)}
    if predictor.operating_point != "validation":
        points["validation threshold"] = (float(metadata.get("temperature", 1.0)), float(metadata["threshold"]))
    return points


def explore_threshold(served: Served, frame: pd.DataFrame, labels: np.ndarray, roc: tuple[np.ndarray, np.ndarray]):
    """The threshold explorer on the internal test: metrics, a clickable confusion matrix, ROC, PR and reliability at
    any threshold, starting at the serving operating point. Returns the explored threshold, the films' probabilities
    at the chosen point's temperature and the confusion matrix's click."""
    st.subheader("Explore the threshold")
    st.info(
        "Exploration only: moving this slider does not change the served model. "
        "Thresholds are chosen on validation data or a site's sample, never on test data.",
        icon=":material/search:",
    )
    points = operating_points(served)
    chosen = st.radio("Operating point", list(points), horizontal=True, key="explore_point")
    temperature, point_threshold = points[chosen]
    if st.session_state.get("explore_point_applied") != chosen:  # a new point moves the slider to its threshold
        st.session_state["explore_point_applied"] = chosen
        st.session_state["explore_threshold"] = point_threshold
    scores = sigmoid(frame["logit"].to_numpy(np.float64) / temperature)
    slider, reset = st.columns([3, 2], vertical_alignment="bottom")
    threshold = slider.slider("Threshold on P(pneumonia)", 0.0, 1.0, step=0.001, format="%.3f", key="explore_threshold")
    reset.button(
        "Reset",  # a longer label was cut at 800 px
        on_click=lambda: st.session_state.update(explore_threshold=point_threshold),
        key="reset_threshold",
        help="Back to the chosen operating point's threshold",
    )
    point = classification_metrics(labels, scores, point_threshold)
    explored = classification_metrics(labels, scores, threshold)
    columns = st.columns(4)
    for column, key in zip(columns, ("sensitivity", "specificity", "precision", "npv")):
        column.metric(PLAIN_NAMES[key], f"{explored[key]:.3f}", f"{explored[key] - point[key]:+.3f}")
    st.caption("Each change is against the operating point chosen above.")
    left, right = st.columns(2)
    with left:
        clicked = st.plotly_chart(
            confusion_figure(
                explored["tn"],
                explored["fp"],
                explored["fn"],
                explored["tp"],
                f"At threshold {threshold:.3f}: click a cell to see its films",
            ),
            width="stretch",
            on_select="rerun",
            selection_mode="points",
            key="confusion",
        )
    explored_point = (1 - explored["specificity"], explored["sensitivity"])
    right.plotly_chart(roc_curves([("internal test", *roc, explored_point)]), width="stretch")
    precision, recall, _ = precision_recall_curve_of(labels, scores)
    left.plotly_chart(
        precision_recall_curve(recall, precision, (explored["sensitivity"], explored["precision"]), explored["pr_auc"]),
        width="stretch",
    )
    predicted, observed, _ = reliability_curve(labels, scores)
    title = f"Reliability at this operating point's temperature (ECE {explored['ece']:.3f})"
    right.plotly_chart(reliability_curves([("model", predicted, observed)], title), width="stretch")
    return threshold, scores, clicked


def published_results() -> None:
    st.subheader("Published results (not measured here)")
    shown = PUBLISHED.copy()
    for column in shown.columns[1:]:  # one type per column: numbers as text, a gap said in words
        shown[column] = [f"{value:.3f}" if pd.notna(value) else "not reported" for value in shown[column]]
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption("These numbers are on the official Kaggle test split, a different population from this internal split.")


def misclassified_films(
    served: Served, frame: pd.DataFrame, labels: np.ndarray, scores: np.ndarray, threshold: float, clicked
) -> None:
    """The films of a confusion-matrix cell (a click on the matrix picks it) with the heat map of either class."""
    st.subheader("What the model gets wrong")
    points = (clicked or {}).get("selection", {}).get("points", []) if clicked else []
    if points and points[0].get("customdata") and points[0]["customdata"] != st.session_state.get("applied_click"):
        truth_name, called_name = st.session_state["applied_click"] = points[0]["customdata"]  # a new click picks the cell
        st.session_state["cell"] = next(
            k for k, v in CELLS.items() if v == (CLASS_NAMES.index(truth_name), CLASS_NAMES.index(called_name))
        )
    cell = st.radio("Show images from the confusion matrix cell", list(CELLS), horizontal=True, key="cell")
    truth, called = CELLS[cell]
    # the binary call at the explored threshold; at the serving point a film inside the referral band is referred
    low, high = served.predictor.band
    serving = sigmoid(frame["logit"].to_numpy(np.float64) / served.predictor.temperature)
    frame = frame.assign(score=scores, referred=(serving >= low) & (serving < high))
    chosen = frame[(labels == truth) & ((scores >= threshold).astype(int) == called)]
    st.caption(
        f"{len(chosen)} film" + ("" if len(chosen) == 1 else "s") + f", called at threshold {threshold:.3f}; "
        f"{int(chosen['referred'].sum())} of them the serving point refers to a radiologist instead (its band "
        f"{low:.3f}–{high:.3f})."
    )
    root = class_root(locations().data_dir, "train")
    if not (root / CLASS_NAMES[0]).is_dir():
        st.warning(f"The data folder ({locations().data_dir}) is not available, so the images themselves cannot be shown.")
        st.dataframe(chosen[["file", "label", "score", "referred"]], hide_index=True)
        return
    shown = chosen.sort_values("score", ascending=bool(called == 0)).head(8)
    files, canonicals, unreadable = load_canonical_films(root, shown["file"].tolist())
    for name in unreadable:
        st.caption(f"{name}: not readable")
    if not files:
        return
    evidence = st.radio(
        "Heat maps show the evidence for",
        [f"the answer ({CLASS_NAMES[called]})", "PNEUMONIA", "NORMAL"],
        horizontal=True,
        key="grid_class",
    )
    explained = CLASS_NAMES[called] if evidence.startswith("the answer") else evidence
    maps = served.predictor.explain(canonicals, [explained] * len(files))  # Grad-CAM, one batched pass
    rows = shown.set_index("file")
    grid = st.columns(4)
    for i, (name, canonical, cam) in enumerate(zip(files, canonicals, maps)):
        referred = " · referred at the serving point" if rows.loc[name, "referred"] else ""
        grid[i % 4].image(
            overlay(canonical, cam, 0.35),
            caption=f"{name} · P={rows.loc[name, 'score']:.2f}{referred} · evidence for {explained}",
            width="stretch",
        )


def training_runs(metadata: dict) -> None:
    """The served model's own training summary, and the runs in this machine's MLflow store."""
    st.subheader("Training runs (MLflow)")
    st.markdown(
        f"The served model, **{metadata.get('name')}**, was trained with recipe *{metadata.get('recipe')}* in "
        f"{metadata.get('train_seconds', 0) / 60:.0f} min (commit `{metadata.get('git_commit', '?')}`): its full run (curves, "
        "artifacts) lives in the MLflow store of the machine that trained it, not in this clone. Runs trained here:"
    )
    try:
        runs = recent_runs()
    except Exception as error:  # noqa: BLE001 - any store problem is shown, not raised
        st.info(f"The MLflow store could not be read ({type(error).__name__}).")
        return
    if len(runs):
        st.dataframe(runs, hide_index=True, width="stretch")
        st.caption(f"Open the full store with `mlflow ui --backend-store-uri {locations().mlflow_tracking_uri}`.")
    else:
        st.caption("No training runs recorded in this MLflow store yet.")


def main() -> None:
    st.title("Metrics of the served model")
    served = served_model_or_stop()
    metadata = served.metadata
    predictions_path = served.directory / EVALUATION_DIR / "test_predictions.csv"
    if not predictions_path.is_file():
        st.error("This model has no evaluation artifacts (test_predictions.csv); re-run its evaluation.")
        st.stop()
    frame = pd.read_csv(predictions_path)
    labels = (frame["label"] == CLASS_NAMES[1]).astype(int).to_numpy()
    scores = frame["probability"].to_numpy()  # at the validation temperature
    validation_threshold = float(metadata["threshold"])
    manifest, rule = metadata.get("data_manifest_sha256"), metadata.get("threshold_rule")
    st.markdown(
        f"Serving at **{operating_point_label(served.predictor.operating_point)}** (threshold "
        f"{served.predictor.threshold:.3f}). Internal test split: **{len(frame)} images** of patients held out from "
        "training, validation and threshold choice (split by patient"
        + (f"; data manifest `{manifest}`" if manifest else "")
        + f"), at the validation threshold **{validation_threshold:.3f}**"
        + (f": {rule}." if rule else ".")
    )
    if promised := promise_table_words(served.predictor.promise):
        st.markdown(promised)
    roc = roc_curve(labels, scores)[:2]  # the same curve at every temperature: computed once
    external_validity(served, frame, labels, scores, roc)
    stored_intervals_table(metadata, classification_metrics(labels, scores, validation_threshold), labels)
    threshold, explored_scores, clicked = explore_threshold(served, frame, labels, roc)
    published_results()
    misclassified_films(served, frame, labels, explored_scores, threshold, clicked)
    training_runs(metadata)


main()
