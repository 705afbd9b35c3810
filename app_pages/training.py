"""Training: start train.py as a separate process, follow its progress live, cancel, promote or roll back.

Everyone sees the job's status and the operator-action log; only an operator (see
:mod:`ui.operator_gate`) sees the form and the buttons that change what is served.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from pneumo_core.common.preprocess import EQUALIZE, INTENSITY_MODES, STRETCH
from pneumo_core.config import access_settings, locations
from pneumo_core.jobs.launcher import Job, JobError, current_job
from pneumo_core.jobs.progress import JobStatus, describe, readable_log
from pneumo_core.jobs.request import SMOKE_IMAGES_PER_CLASS, TrainConfig
from pneumo_core.operations.audit import recent_actions
from pneumo_core.store.model_dir import ModelLoadError, previous_dir, read_metadata
from pneumo_core.visualize.distributions import epoch_curves
from ui.operator_actions import cancel_training, promote_model, roll_back_model, start_training
from ui.operator_gate import is_operator

INTENSITY_LABELS = {STRETCH: "Stretched film", EQUALIZE: "Equalised film"}
# How training treats one device's acquisition style, and the train.py flag of each choice (a comment: Streamlit
# would print a bare string on the page).
ACQUISITION_HANDLING = {
    "Learnt like any look": [],
    "Balanced (films reweighted)": ["--balance-acquisition"],
    "Explained (logit offset)": ["--acquisition-offset"],
}


def metrics_row(name: str, metadata: dict) -> dict:
    test = metadata.get("metrics", {}).get("test", {})
    return {
        "model": name,
        **{k: round(test[k], 4) for k in ("accuracy", "sensitivity", "specificity", "roc_auc") if k in test},
        "threshold": round(metadata.get("threshold", float("nan")), 3),
        "recipe": metadata.get("recipe"),
        "base weights": metadata.get("base_weights"),
    }


# What a recorded configuration says about its own run, not about the recipe: a new run chooses them afresh.
RUN_FIELDS = ("data_dir", "output_dir", "run_name", "progress_file", "smoke", "experiment")
# The form's last submitted values (a plain session key: widgets' own state goes while a run hides the form).
FORM_STATE = "training_form_values"


def form_defaults(data_dir: str) -> tuple[TrainConfig, str]:
    """The recipe the form starts from: the served model's, as its metadata records it, else the seed's."""
    try:
        metadata = read_metadata(locations().model_dir)
    except (ModelLoadError, OSError):
        metadata = {}
    record = {key: value for key, value in (metadata.get("config") or {}).items() if key not in RUN_FIELDS}
    if not record:
        return TrainConfig(data_dir=data_dir), "the seed recipe"
    return TrainConfig.from_record(record, data_dir=data_dir), f"the served model's recipe ({metadata.get('name')})"


def acquisition_choice(config: TrainConfig) -> str:
    flags = ["--balance-acquisition"] if config.balance_acquisition else []
    flags += ["--acquisition-offset"] if config.acquisition_offset else []
    return next(name for name, chosen in ACQUISITION_HANDLING.items() if chosen == flags)


def training_form() -> None:
    """The new-run form (operators, no job running): it starts from the served model's recipe and keeps what was
    last submitted (after a cancel, the same settings are there again)."""
    roots = locations().training_data_roots
    if not roots:
        st.error(
            f"No training data folder is available (looked for {locations().data_dir}). Set PNEUMO_DATA_DIR or PNEUMO_DATA_ROOTS."
        )
        return
    defaults, origin = form_defaults(str(roots[0]))
    last = st.session_state.get(FORM_STATE, {})
    smoke = st.toggle(
        "Quick check: the whole pipeline on a few films (about 2 minutes)", value=last.get("smoke", False), key="quick_check"
    )
    shown = replace(defaults, smoke=smoke).effective()  # what will actually run
    if smoke:
        films = sum(SMOKE_IMAGES_PER_CLASS.values()) * 2
        st.caption(
            f"A quick check trains on {films} films at {shown.img_size} px ({shown.scratch_schedule} from scratch): "
            "it proves the pipeline works, not that the model is good. The greyed settings do not apply to it."
        )
    extra = defaults.augmentation_args()
    with st.form("train_form"):
        st.markdown(
            f"The settings start from {origin}"
            + (f", with {' '.join(extra)} as well" if extra else "")
            + "; without pretrained weights the from-scratch schedule is used."
        )
        data_dir = st.selectbox("Data folder", [str(r) for r in roots])
        c1, c2 = st.columns(2)  # two a row: four were cut at 800 px
        sizes = [shown.img_size] if smoke else [224, 192, 160, 128]
        img_size = c1.selectbox("Image size", sizes, index=_index(sizes, last.get("img_size", shown.img_size)), disabled=smoke)
        batches = [shown.batch_size] if smoke else [8, 16, 32]
        batch_size = c2.selectbox(
            "Batch size", batches, index=_index(batches, last.get("batch_size", shown.batch_size)), disabled=smoke
        )
        c3, c4 = st.columns(2)
        epochs = c3.number_input("Head epochs (transfer)", 1, 50, last.get("epochs", shown.epochs), disabled=smoke)
        lr = c4.select_slider(
            "Learning rate (transfer)", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], value=last.get("lr", defaults.lr), disabled=smoke
        )
        c1, c2 = st.columns(2)  # two a row here too: the threshold rule's label was cut in a third column at 800 px
        weights = ["auto", "imagenet", "none"]
        base_weights = c1.selectbox(
            "Base weights",
            weights,
            index=_index(weights, last.get("base_weights", defaults.base_weights)),
            help="auto: local file or ImageNet if reachable, else from scratch",
        )
        schedule = c2.text_input(
            "From-scratch schedule (size:epochs:batch)", last.get("schedule", shown.scratch_schedule), disabled=smoke
        )
        target = st.slider(
            "Threshold rule: validation sensitivity ≥", 0.90, 0.99, last.get("target", defaults.target_sensitivity), 0.01
        )
        c1, c2 = st.columns(2)
        augment = c1.checkbox("Augmentation", last.get("augment", defaults.augment))
        flip = c2.checkbox(
            "Horizontal flips",
            last.get("flip", defaults.augmentation.horizontal_flip),
            help="Flips move the heart to the right side",
        )
        c3, c4 = st.columns(2)
        intensity = c3.selectbox(
            "Grey levels the model sees",
            INTENSITY_MODES,
            index=INTENSITY_MODES.index(last.get("intensity", defaults.intensity)),
            format_func=INTENSITY_LABELS.get,
            help="Equalised: each film histogram-equalised, in training and whenever the model serves, so exposure, "
            "gamma and contrast cannot change its answer.",
        )
        choices = list(ACQUISITION_HANDLING)
        acquisition = c4.selectbox(
            "Acquisition styles",
            choices,
            index=choices.index(last.get("acquisition", acquisition_choice(defaults))),
            help="One device's films (they carry its marker) are nearly all pneumonia in the training split. Balanced: "
            "normal and pneumonia films weigh alike within each style. Explained: training adds the style's log-odds "
            "of pneumonia to the model's logit, so its look earns nothing; the model serves without it.",
        )
        submitted = st.form_submit_button("Start training", type="primary")
    if not submitted:
        return
    st.session_state[FORM_STATE] = {
        "smoke": smoke,
        "img_size": img_size,
        "batch_size": batch_size,
        "epochs": epochs,
        "lr": lr,
        "base_weights": base_weights,
        "schedule": schedule,
        "target": target,
        "augment": augment,
        "flip": flip,
        "intensity": intensity,
        "acquisition": acquisition,
    }
    if smoke:
        start(["--data-dir", data_dir, "--base-weights", base_weights, "--smoke"] + ([] if augment else ["--no-augment"]))
        return
    try:
        replace(defaults, img_size=img_size, scratch_schedule=schedule).scratch_phases()
    except ValueError as error:
        st.error(f"The from-scratch schedule is not valid: {error}")
        return
    args = ["--data-dir", data_dir, "--img-size", str(img_size), "--batch-size", str(batch_size), "--epochs", str(epochs)]
    args += ["--lr", str(lr), "--base-weights", base_weights, "--scratch-schedule", schedule, "--target-sensitivity", str(target)]
    args += extra if augment else ["--no-augment"]
    args += [] if flip else ["--no-flip"]
    args += ["--intensity", intensity]
    args += ACQUISITION_HANDLING[acquisition]
    start(args)


def _index(options: list, value: object) -> int:
    return options.index(value) if value in options else 0


def start(args: list[str]) -> None:
    try:
        start_training(args)
        st.rerun()
    except (JobError, OSError) as error:
        st.error(str(error))


def progress_bar(status: JobStatus) -> None:
    """The phase's progress from the first second: what the run is doing, elapsed time, time left."""
    steps = [e for e in status.events if e["event"] in ("step", "epoch")]
    done = 0.0
    if steps and status.state == "running":
        last = steps[-1]
        done = ((last.get("epoch", 1) - 1) * last.get("steps", 1) + last.get("step", last.get("steps", 1))) / max(
            1, last.get("epochs", 1) * last.get("steps", 1)
        )
    elif status.state == "done":
        done = 1.0
    st.progress(min(1.0, done), text=describe(status, time.time()))


def per_epoch_section(events: list[dict]) -> None:
    epochs = pd.DataFrame(
        [{"epoch": i + 1, "phase": e["phase"], **e["metrics"]} for i, e in enumerate(x for x in events if x["event"] == "epoch")]
    )
    if not len(epochs):
        return
    curves = {column: epochs[column].tolist() for column in ("loss", "val_loss", "auc", "val_auc") if column in epochs}
    st.plotly_chart(epoch_curves(epochs["epoch"].tolist(), curves), width="stretch")


def cancel_button(job: Job) -> None:
    """Cancel: the job stops within seconds in every phase; the whole page then shows the form again."""
    if st.button("Cancel training", key="cancel", help="Stops the run within a few seconds; the served model is unchanged."):
        with st.spinner("Stopping the run…"):
            cancel_training(job)
        st.rerun(scope="app")


@st.fragment(run_every=2)
def job_status(operator: bool) -> None:
    """The current job, refreshed every 2 s: phase, progress, curves, log; Cancel for operators. When a running job
    ends (finished, failed, or cancelled from another browser), the whole page is drawn again."""
    job = current_job()
    if job is None:
        st.caption("No training job has been started from this server yet.")
        return
    status = job.status()
    seen_running = st.session_state.get("job_seen_running")
    st.session_state["job_seen_running"] = job.run_name if status.state == "running" else None
    if seen_running == job.run_name and status.state != "running":
        st.rerun(scope="app")
    st.subheader(f"Job {job.run_name}: {status.state}")
    progress_bar(status)
    per_epoch_section(status.events)
    if status.state == "running" and operator:
        cancel_button(job)
    if status.state == "failed":
        st.error(f"The run did not finish: {status.last.get('error', 'unknown error')}. The served model is unchanged.")
    if status.state == "cancelled":
        st.info("The run was cancelled. The served model is unchanged.")
    with st.expander("Log (last lines, library noise filtered)"):
        st.code(readable_log(job.log_tail(400)) or "(nothing yet)")


def compare_and_promote(job: Job, model_dir: Path) -> None:
    st.subheader("Compare and promote")
    rows = []
    try:
        rows.append(metrics_row("served", read_metadata(locations().model_dir)))
    except ModelLoadError:
        pass
    try:
        rows.append(metrics_row(f"new ({job.run_name})", read_metadata(model_dir)))
    except ModelLoadError as error:
        st.error(str(error))
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("Internal-test metrics of each model on its own split. Promote only what you would defend.")
    if st.button("Promote the new model", type="primary", disabled=not model_dir.is_dir()):
        promote_model(model_dir)
        st.success("The new model is now served. The previous one is kept for roll-back.")


def roll_back_button() -> None:
    previous = previous_dir(locations().model_dir)
    if previous.is_dir() and st.button("Roll back to the previous model"):
        try:
            roll_back_model()
            st.success("Rolled back: the previous model is served again.")
        except ModelLoadError as error:
            st.error(str(error))


def operator_log() -> None:
    actions = recent_actions(20)
    with st.expander(f"Operator actions ({len(actions)} most recent)" if actions else "Operator actions (none yet)"):
        if actions:
            st.dataframe(pd.DataFrame(actions), hide_index=True, width="stretch")
        else:
            st.caption("Every start, cancel, promotion, roll-back and site-profile change is recorded here.")


st.title("Training")
if not access_settings().training:
    st.info("Training is disabled on this server (public demo). Run `python train.py` on your own machine instead.")
    st.stop()

operator = is_operator()
job = current_job()
status = job.status() if job else None
if operator and not (status and status.state == "running"):
    training_form()
job_status(operator)
if operator and job and status and status.state == "done":
    compare_and_promote(job, Path(status.last.get("model_dir", "")))
if operator:
    roll_back_button()
operator_log()
st.caption(f"All runs are tracked in MLflow: `mlflow ui --backend-store-uri {locations().mlflow_tracking_uri}`")
