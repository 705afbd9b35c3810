"""Training: start train.py as a separate process, follow its progress live, cancel, promote or roll back."""

from __future__ import annotations

import hmac
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pneumo_core.config import default_data_dir, mlflow_tracking_uri, served_model_dir, training_data_roots
from pneumo_core.jobs import JobError, cancel_job, current_job, start_job
from pneumo_core.registry import ModelLoadError, promote, read_metadata, roll_back
from pneumo_core.train_config import TrainConfig

st.title("Training")


def training_enabled() -> bool:
    """Off with PNEUMO_TRAINING=off or secrets ``[training] enabled = false`` (for a public demo)."""
    if os.environ.get("PNEUMO_TRAINING", "on").lower() in ("off", "0", "false", "disabled"):
        return False
    try:
        return bool(st.secrets.get("training", {}).get("enabled", True))
    except FileNotFoundError:
        return True


def password_ok() -> bool:
    try:
        expected = st.secrets.get("training", {}).get("password")
    except FileNotFoundError:
        expected = None
    if not expected:
        return True
    given = st.text_input("Training password", type="password", key="training_password")
    return hmac.compare_digest(given.encode(), str(expected).encode())


if not training_enabled():
    st.info("Training is disabled on this server (public demo). Run `python train.py` on your own machine instead.")
    st.stop()
if not password_ok():
    st.stop()


def metrics_row(name: str, metadata: dict) -> dict:
    test = metadata.get("metrics", {}).get("test", {})
    return {"model": name, **{k: round(test[k], 4) for k in ("accuracy", "sensitivity", "specificity", "roc_auc") if k in test},
            "threshold": round(metadata.get("threshold", float("nan")), 3), "recipe": metadata.get("recipe"),
            "base weights": metadata.get("base_weights")}


job = current_job()
status = job.status() if job else None
running = bool(status and status.state == "running")

if not running:
    roots = training_data_roots()
    if not roots:
        st.error(f"No training data folder is available (looked for {default_data_dir()}). Set PNEUMO_DATA_DIR or PNEUMO_DATA_ROOTS.")
        st.stop()
    defaults = TrainConfig(data_dir=str(roots[0]))
    with st.form("train_form"):
        st.markdown("Defaults are the seed recipe; without pretrained weights the from-scratch schedule is used.")
        data_dir = st.selectbox("Data folder", [str(r) for r in roots])
        c1, c2, c3, c4 = st.columns(4)
        img_size = c1.selectbox("Image size", [224, 192, 160, 128], index=0)
        batch_size = c2.selectbox("Batch size", [8, 16, 32], index=1)
        epochs = c3.number_input("Head epochs (transfer)", 1, 50, defaults.epochs)
        lr = c4.select_slider("Learning rate (transfer)", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], value=defaults.lr)
        c1, c2, c3 = st.columns(3)
        base_weights = c1.selectbox("Base weights", ["auto", "imagenet", "none"], help="auto: local file or ImageNet if reachable, else from scratch")
        schedule = c2.text_input("From-scratch schedule (size:epochs:batch)", defaults.scratch_schedule)
        target = c3.slider("Threshold rule: validation sensitivity ≥", 0.90, 0.99, defaults.target_sensitivity, 0.01)
        c1, c2, c3 = st.columns(3)
        augment = c1.checkbox("Augmentation", True)
        flip = c2.checkbox("Horizontal flips", False, help="Flips move the heart to the right side")
        smoke = c3.checkbox("Quick check (a few images, ~2 minutes)", False)
        submitted = st.form_submit_button("Start training", type="primary")
    if submitted:
        try:
            replace(defaults, img_size=img_size, scratch_schedule=schedule).scratch_phases()
        except ValueError as error:
            st.error(f"The from-scratch schedule is not valid: {error}")
            st.stop()
        args = ["--data-dir", data_dir, "--img-size", str(img_size), "--batch-size", str(batch_size), "--epochs", str(epochs),
                "--lr", str(lr), "--base-weights", base_weights, "--scratch-schedule", schedule, "--target-sensitivity", str(target)]
        args += [] if augment else ["--no-augment"]
        args += [] if flip else ["--no-flip"]
        args += ["--smoke"] if smoke else []
        try:
            start_job(args)
            st.rerun()
        except (JobError, OSError) as error:
            st.error(str(error))


@st.fragment(run_every=2)
def follow() -> None:
    job = current_job()
    if job is None:
        st.caption("No training job has been started from this server yet.")
        return
    status = job.status()
    events = status.events
    st.subheader(f"Job {job.run_name}: {status.state}")
    steps = [e for e in events if e["event"] in ("step", "epoch")]
    if steps:
        last = steps[-1]
        done = ((last.get("epoch", 1) - 1) * last.get("steps", 1) + last.get("step", last.get("steps", 1))) / max(1, last.get("epochs", 1) * last.get("steps", 1))
        eta = last.get("eta_s")
        st.progress(min(1.0, done), text=f"phase {last.get('phase')} · epoch {last.get('epoch')}/{last.get('epochs')}"
                    + (f" · about {eta / 60:.0f} min left in this phase" if eta else ""))
    epochs = pd.DataFrame([{"epoch": i + 1, "phase": e["phase"], **e["metrics"]} for i, e in enumerate(x for x in events if x["event"] == "epoch")])
    if len(epochs):
        figure = go.Figure(layout={"title": "Per-epoch curves", "xaxis_title": "epoch", "height": 320})
        for column in [c for c in ("loss", "val_loss", "auc", "val_auc") if c in epochs]:
            figure.add_scatter(x=epochs["epoch"], y=epochs[column], mode="lines+markers", name=column)
        st.plotly_chart(figure, width="stretch")
    if status.state == "running":
        left, right = st.columns(2)
        if left.button("Cancel training", key="cancel"):
            cancel_job(job)
            st.toast("Cancelling… the job stops after the current training step.")
        if right.button("Force stop", key="force_stop", help="Kills the process at once (use if Cancel does not stop it within a minute)."):
            cancel_job(job, force=True)
    if status.state == "failed":
        st.error(f"The run did not finish: {status.last.get('error', 'unknown error')}. The served model is unchanged.")
    with st.expander("Log (last lines)"):
        st.code(job.log_tail() or "(empty)")


follow()

if job and status and status.state == "done":
    candidate = Path(status.last.get("model_dir", ""))
    st.subheader("Compare and promote")
    rows = []
    try:
        rows.append(metrics_row("served", read_metadata(served_model_dir())))
    except ModelLoadError:
        pass
    try:
        rows.append(metrics_row(f"new ({job.run_name})", read_metadata(candidate)))
    except ModelLoadError as error:
        st.error(str(error))
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("Internal-test metrics of each model on its own split. Promote only what you would defend.")
    if st.button("Promote the new model", type="primary", disabled=not candidate.is_dir()):
        promote(candidate, served_model_dir())
        st.cache_resource.clear()
        st.success("The new model is now served. The previous one is kept for roll-back.")

previous = served_model_dir().with_name(served_model_dir().name + ".previous")
if previous.is_dir() and st.button("Roll back to the previous model"):
    try:
        roll_back(served_model_dir())
        st.cache_resource.clear()
        st.success("Rolled back: the previous model is served again.")
    except ModelLoadError as error:
        st.error(str(error))
st.caption(f"All runs are tracked in MLflow: `mlflow ui --backend-store-uri {mlflow_tracking_uri()}`")
