"""Every page through Streamlit's AppTest, including the error states (no model, no data, a running job)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import train as train_py
from devtools.imaging import dicom_bytes, encode, synthetic_xray
from pneumo_core.evaluation.reports import predictions_frame, write_evaluation
from pneumo_core.store.model_dir import EVALUATION_DIR

from .conftest import PROJECT_ROOT

APP = str(PROJECT_ROOT / "streamlit_app.py")
TIMEOUT = 120


@pytest.fixture(scope="module")
def app_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model plus evaluation artifacts for a few real file names, as the Metrics page expects."""
    import shutil

    directory = tmp_path_factory.mktemp("served") / "served"
    shutil.copytree(tiny_model_dir, directory)
    rng = np.random.default_rng(0)
    files = [f"NORMAL/IM-0{i}15-0001.jpeg" for i in range(1, 7)] + [
        f"PNEUMONIA/person{i}_bacteria_{i}.jpeg" for i in range(1, 11)
    ]
    labels = np.array([0] * 6 + [1] * 10)
    frame = predictions_frame(files, labels, rng.normal(labels * 2 - 1, 1.0), 1.0, 0.5)
    write_evaluation(frame, 0.5, directory / EVALUATION_DIR, "test")
    return directory


@pytest.fixture
def app_env(monkeypatch, app_model_dir, tmp_path):
    """The tiny model, a private runs folder and a Kermany-layout data folder holding synthetic films under the file names
    of the model's evaluation (so the Metrics page can show them): no dependence on ../shared."""
    import pandas as pd

    data = tmp_path / "data" / "chest_xray"
    for seed, name in enumerate(pd.read_csv(app_model_dir / EVALUATION_DIR / "test_predictions.csv")["file"]):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(encode(synthetic_xray(160, seed=seed), "JPEG"))
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(app_model_dir))
    monkeypatch.setenv("PNEUMO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(data))
    monkeypatch.setenv("PNEUMO_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.delenv("PNEUMO_OPERATOR_PASSWORD", raising=False)
    monkeypatch.delenv("PNEUMO_PUBLIC", raising=False)
    with bind_address("127.0.0.1"):  # the committed .streamlit/config.toml: loopback, operators need no password
        yield tmp_path


@contextlib.contextmanager
def bind_address(address: str | None):
    """Streamlit's ``server.address`` option for AppTest runs (they bind nothing: the option is only read)."""
    from streamlit import config

    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        yield
    finally:
        config.set_option("server.address", before)


def run_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown]
        + [m.value for m in at.caption]
        + [e.value for e in at.error]
        + [w.value for w in at.warning]
    )
    parts += [i.value for i in at.info] + [t.value for t in at.title] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def probability_lines(at) -> list[str]:
    """The "Probability of pneumonia: P, below/above the threshold of T" line of each answered film."""
    return [m.value for m in at.markdown if m.value.startswith("Probability of pneumonia:")]


def test_classify_page_shows_disclaimer_and_examples(app_env):
    at = run_page()
    assert "Classify a chest X-ray" in texts(at)
    assert "not for clinical use" in texts(at)
    assert any(b.key and b.key.startswith("example_") for b in at.button)


def test_example_button_classifies(app_env):
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    assert not at.exception
    assert probability_lines(at)
    assert any(verdict in texts(at) for verdict in ("**NORMAL**", "**PNEUMONIA**", "**REFER**"))


@pytest.mark.parametrize("method", ["Grad-CAM++", "ScoreCAM"])
def test_other_methods_are_computed_from_the_answer_on_the_serving_runtime(app_env, method):
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    at.selectbox(key="cam_method").set_value(method).run()
    assert not at.exception
    assert [key[1] for key in at.session_state["cams"]] == ["Grad-CAM", method]  # the default map first, then this one
    captions = [image.caption for element in at.get("image") for image in element.proto.imgs]
    assert any(caption.startswith(f"{method}: evidence for ") for caption in captions)


def test_removed_uploads_are_forgotten(app_env):
    at = run_page()
    first, second = encode(synthetic_xray(200, seed=1)), encode(synthetic_xray(200, seed=2))
    at.file_uploader(key="uploads_0").set_value([("a.png", first, "image/png"), ("b.png", second, "image/png")]).run()
    assert len(at.session_state["cases"]) == 2
    at.file_uploader(key="uploads_0").set_value([("b.png", second, "image/png")]).run()
    assert not at.exception and len(at.session_state["cases"]) == 1


def test_reruns_keep_the_compiled_model_functions(app_env, monkeypatch):
    """Streamlit's post-run clean-up would call keras.backend.clear_session().

    That would force every compiled graph to be re-optimised."""
    import keras

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: cleared.append(True))
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    at.run()
    assert not at.exception and cleared == []


def test_mixed_batch_good_files_answered_bad_files_explained(app_env):
    at = run_page()
    good = encode(synthetic_xray(200, seed=1))
    uploads = [
        ("good.png", good, "image/png"),
        ("broken.png", b"\x89PNG garbage", "image/png"),
        ("also_good.jpg", encode(synthetic_xray(150, seed=2), "JPEG"), "image/jpeg"),
    ]
    at.file_uploader(key="uploads_0").set_value(uploads).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(probability_lines(at)) == 2
    errors = [e.value for e in at.error]
    assert any("broken" not in e and "damaged" in e for e in errors)
    table = at.dataframe[0].value
    assert list(table["file"]) == ["good.png", "broken.png", "also_good.jpg"]
    assert table.loc[1, "P(pneumonia)"] == table.loc[1, "decision"] == "" and "damaged" in table.loc[1, "reason no label"]
    assert table.loc[0, "decision"] in ("NORMAL", "PNEUMONIA") or table.loc[0, "decision"].startswith("REFER")
    assert set(table.columns) >= {"model", "operating point", "threshold", "referral band", "warnings", "time (UTC)"}
    assert list(table.columns[:2]) == ["file", "decision"]  # the answer first
    assert set(table["operating point"]) == {"validation"}


def test_byte_identical_films_each_get_their_section_and_are_named_the_same_film(app_env):
    at = run_page()
    film = encode(synthetic_xray(160, seed=5))
    uploads = [
        ("film.png", film, "image/png"),
        ("copy_of_film.png", film, "image/png"),
        ("other.png", encode(synthetic_xray(140, seed=6)), "image/png"),
    ]
    at.file_uploader(key="uploads_0").set_value(uploads).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader if s.value.endswith(".png")] == ["film.png", "copy_of_film.png", "other.png"]
    assert len(probability_lines(at)) == 3  # every film its answer, its scale and its report
    assert any("The same film as film.png" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert table.loc[0, "P(pneumonia)"] == table.loc[1, "P(pneumonia)"] != ""
    first_times = list(table["time (UTC)"])
    time.sleep(1.1)
    at.run()  # a redraw answers nothing again: each film keeps the time of its answer
    assert list(at.dataframe[0].value["time (UTC)"]) == first_times and all(first_times)


def test_every_added_film_is_classified_in_pages_of_twelve_and_one_click_clears_the_batch(app_env):
    at = run_page()
    first = [(f"first_{i}.png", encode(synthetic_xray(96, seed=i)), "image/png") for i in range(12)]
    at.file_uploader(key="uploads_0").set_value(first).run()
    assert len(at.dataframe[0].value) == 12 and not any("are classified" in w.value for w in at.warning)
    added = [(f"added_{i}.png", encode(synthetic_xray(96, seed=100 + i)), "image/png") for i in range(3)]
    at.file_uploader(key="uploads_0").set_value(first + added).run()  # the uploader keeps the first batch
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert list(table["file"]) == [name for name, _, _ in first + added]
    assert (table["decision"] != "").all()  # every film answered, the added ones too
    pages = at.get("button_group")[0]
    assert pages.options == ["Films 1–12", "Films 13–15"]
    assert len(probability_lines(at)) == 12  # heat maps and reports a page at a time
    pages.set_value("Films 13–15").run()
    films_shown = [s.value for s in at.subheader if s.value.endswith(".png")]
    assert len(probability_lines(at)) == 3 and films_shown == [name for name, _, _ in added]
    clear = next(b for b in at.button if b.label == "Clear all films")
    clear.click().run()
    assert not at.dataframe and at.file_uploader(key="uploads_1").value in (None, [])
    assert "cases" not in at.session_state or not at.session_state["cases"]  # the answers are forgotten too


def test_a_colour_picture_gets_no_verdict_in_the_page_or_the_csv(app_env):
    import io

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photo = io.BytesIO()
    Image.fromarray(load_sample_images().images[1]).save(photo, format="PNG")
    at = run_page()
    at.file_uploader(key="uploads_0").set_value([("flower.png", photo.getvalue(), "image/png")]).run()
    assert not at.exception
    assert "Not assessed" in texts(at) and "colour picture" in texts(at)
    assert not probability_lines(at)
    assert "**NORMAL**" not in texts(at) and "**PNEUMONIA**" not in texts(at)
    table = at.dataframe[0].value  # the one-film table, as downloaded
    assert table.loc[0, "decision"] == "" and "colour picture" in table.loc[0, "reason no label"]
    # its PDF report says "Not assessed" (tests/test_report.py)
    assert [b.label for b in at.get("download_button")][-1] == "Download case report (PDF)"


def test_dicom_patient_fields_only_in_the_expander_and_never_logged(app_env):
    import logging

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        at = run_page()
        pixels = synthetic_xray(200, seed=3).astype(np.uint16) * 16
        at.file_uploader(key="uploads_0").set_value([("scan.dcm", dicom_bytes(pixels), "application/dicom")]).run()
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert not at.exception, [e.value for e in at.exception]
    assert probability_lines(at)
    expander = next(e for e in at.expander if "DICOM header fields" in e.label)
    assert "Doe^Jane" in expander.table[0].value.to_string()
    assert "Doe^Jane" not in texts(at) and "P-123" not in texts(at)  # nowhere outside the expander
    assert records and not any("Doe^Jane" in r or "P-123" in r or "scan.dcm" in r for r in records)


def test_training_page_offers_only_configured_roots_and_checks_the_schedule(app_env, monkeypatch):
    roots = [app_env / "site-a", app_env / "missing", app_env / "site-b"]
    for root in (roots[0], roots[2]):
        root.mkdir()
    monkeypatch.setenv("PNEUMO_DATA_ROOTS", os.pathsep.join(str(r) for r in roots))
    at = run_page("app_pages/training.py")
    assert at.selectbox[0].label == "Data folder" and at.selectbox[0].options == [str(roots[0]), str(roots[2])]
    at.text_input[0].set_value("224:x:16")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert any("schedule is not valid" in e.value for e in at.error)
    assert not (app_env / "runs" / "current_job.json").exists()  # nothing was started


OPERATOR_CONTROLS = (
    "Start training",
    "Cancel training",
    "Promote the new model",
    "Roll back to the previous model",
)


def operator_controls(at: AppTest) -> list[str]:
    return [b.label for b in at.button if b.label in OPERATOR_CONTROLS]


def unlock(at: AppTest, password: str) -> AppTest:
    at.text_input(key="operator_password").set_value(password)
    return next(b for b in at.button if b.label == "Unlock operator actions").click().run()


def test_exposed_server_without_password_shows_no_operator_controls(app_env, running_job):
    with bind_address("0.0.0.0"):
        at = run_page("app_pages/training.py")
        assert operator_controls(at) == [] and "no operator password is set" in texts(at)
        assert "running" in texts(at)  # viewers still follow the job, read-only
    with bind_address(None):  # Streamlit's own default: every interface
        assert operator_controls(run_page("app_pages/training.py")) == []


def test_loopback_marked_public_is_treated_as_exposed(app_env, monkeypatch):
    monkeypatch.setenv("PNEUMO_PUBLIC", "1")  # e.g. behind a reverse proxy on this machine
    assert operator_controls(run_page("app_pages/training.py")) == []


def test_loopback_server_without_password_keeps_the_operator_workflow(app_env, running_job):
    at = run_page("app_pages/training.py")
    assert operator_controls(at) == ["Cancel training"]  # a job runs: no new start, cancel at hand


def test_cancel_stops_the_job_and_the_page_shows_the_form_and_the_audit_entry_again(app_env, running_job):
    at = run_page("app_pages/training.py")
    next(b for b in at.button if b.label == "Cancel training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Start training" in operator_controls(at) and "Cancel training" not in operator_controls(at)
    assert "Job job: cancelled" in texts(at) and "The run was cancelled" in texts(at)
    actions = at.dataframe[-1].value  # the operator-action log, newest first
    assert actions.iloc[0]["action"] == "cancel training" and actions.iloc[0]["outcome"] == "cancelled"


@pytest.mark.parametrize("source", ["environment", "secrets file"])
def test_operator_password_unlocks_controls_and_wrong_tries_slow_down(app_env, monkeypatch, source):
    import ui.access
    from pneumo_core.operations.access import Throttle

    monkeypatch.setattr(ui.access, "_THROTTLE", Throttle(free=1))
    if source == "environment":
        monkeypatch.setenv("PNEUMO_OPERATOR_PASSWORD", "s3cret")
    else:
        (app_env / "secrets.toml").write_text('[operator]\npassword = "s3cret"\n')
        monkeypatch.setenv("PNEUMO_SECRETS_FILE", str(app_env / "secrets.toml"))
    with bind_address("0.0.0.0"):
        at = run_page("app_pages/training.py")
        assert operator_controls(at) == []
        unlock(at, "guess")
        assert operator_controls(at) == [] and any("Wrong password" in e.value for e in at.error)
        unlock(at, "s3cret")  # locked for 2 s after the second failure: not even compared
        assert operator_controls(at) == [] and any("Too many wrong passwords" in e.value for e in at.error)
        time.sleep(ui.access._THROTTLE.retry_after() + 0.1)
        unlock(at, "s3cret")
        assert operator_controls(at) == ["Start training"]
        assert not [t for t in at.text_input if t.label == "Operator password"]  # the box is gone at once
        assert any("Signed in as operator" in s.value for s in at.success)
        next(b for b in at.button if b.label == "Sign out").click().run()
        assert operator_controls(at) == [] and [t for t in at.text_input if t.label == "Operator password"]


def test_operator_actions_refuse_a_viewer_and_are_logged_for_an_operator(app_env, tmp_path):
    """The page code paths themselves refuse: a viewer cannot reach promote, roll back or start even by a bug in a page."""

    def script():
        import streamlit as st

        from ui.access import OperatorRequired
        from ui.operator_actions import promote_model, roll_back_model, start_training

        for name, action in (
            ("promote", lambda: promote_model(st.session_state.candidate)),
            ("roll back", roll_back_model),
            ("start", lambda: start_training(["--smoke"])),
        ):
            try:
                action()
                st.write(f"{name}: done")
            except OperatorRequired:
                st.write(f"{name}: refused")
            except Exception as error:  # noqa: BLE001 - shown to the test
                st.write(f"{name}: {type(error).__name__}")

    served = json.loads((Path(os.environ["PNEUMO_MODEL_DIR"]) / "metadata.json").read_text())["name"]
    with bind_address("0.0.0.0"):
        at = AppTest.from_function(script, default_timeout=TIMEOUT)
        at.session_state.candidate = Path(os.environ["PNEUMO_MODEL_DIR"])
        at.run()
        assert [m.value for m in at.markdown] == ["promote: refused", "roll back: refused", "start: refused"]
    from pneumo_core.operations.audit import recent_actions

    assert recent_actions() == []  # nothing happened, nothing was logged
    assert json.loads((Path(os.environ["PNEUMO_MODEL_DIR"]) / "metadata.json").read_text())["name"] == served


def test_no_model_gives_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(tmp_path / "nothing-here"))
    for page in (None, "app_pages/metrics.py", "app_pages/model_card.py"):
        at = run_page(page)
        assert "No model" in texts(at)


def test_a_tampered_model_file_is_refused_with_a_message(monkeypatch, tiny_model_dir, tmp_path):
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(tiny_model_dir, tampered)
    with open(tampered / "model.keras", "ab") as handle:
        handle.write(b"\0")
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(tampered))
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    assert not at.exception and "does not match its metadata" in texts(at)
    assert not probability_lines(at)


def test_metrics_page_with_and_without_data_folder(app_env, monkeypatch, tmp_path):
    at = run_page("app_pages/metrics.py")
    assert "95% intervals by patient" in texts(at)
    published = next(f.value for f in at.dataframe if "reference (official 624-image test split)" in f.value)
    assert all(isinstance(v, str) for column in published.columns[1:] for v in published[column])  # one type a column
    metric_names = set(next(f.value for f in at.dataframe if "metric" in f.value)["metric"])
    assert not metric_names & {"f1", "pr_auc"}  # plain names only
    at.slider(key="explore_threshold").set_value(0.2).run()
    assert not at.exception
    grid_captions = lambda: [i.caption for e in at.get("image") for i in e.proto.imgs if "evidence for" in i.caption]  # noqa: E731
    answer = at.radio(key="grid_class").value  # "the answer (NORMAL)": the class the cell's films were called
    assert grid_captions() and all(c.endswith(f"evidence for {answer[12:-1]}") for c in grid_captions())
    cell = next(c.value for c in at.caption if "called at threshold 0.200" in c.value)
    assert "the serving point refers to a radiologist instead" in cell  # the binary call, and what serving does
    for explained in ("PNEUMONIA", "NORMAL"):  # the misclassified films' maps, for either class
        at.radio(key="grid_class").set_value(explained).run()
        assert not at.exception and grid_captions() and all(c.endswith(f"evidence for {explained}") for c in grid_captions())
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(tmp_path / "no-data"))
    at = run_page("app_pages/metrics.py")
    assert "not available" in texts(at)


def test_a_wrong_setting_stops_the_app_with_its_variable_named(app_env, monkeypatch):
    monkeypatch.setenv("PNEUMO_RUNTIME", "fast")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception and any("PNEUMO_RUNTIME='fast'" in e.value for e in at.error)
    assert not at.button and not at.file_uploader  # nothing else ran


def test_model_card_page(app_env):
    at = run_page("app_pages/model_card.py")
    assert "Intended use" in texts(at) and "tiny-test-model" in texts(at) and "served by **TensorFlow**" in texts(at)
    assert "<!--" not in texts(at) and "generated:" not in texts(at)  # the card's block markers are not shown


def test_the_training_form_passes_the_settings_chosen_to_train_py(app_env, monkeypatch):
    import ui.operator_actions

    started = []
    monkeypatch.setattr(ui.operator_actions, "start_job", lambda args: started.append(args) or _NoJob())
    at = run_page("app_pages/training.py")
    next(s for s in at.selectbox if s.label == "Grey levels the model sees").set_value("equalize")
    next(c for c in at.checkbox if c.label == "Horizontal flips").uncheck()
    next(s for s in at.selectbox if s.label == "Acquisition styles").set_value("Explained (logit offset)")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (args,) = started
    assert args[args.index("--intensity") + 1] == "equalize" and "--no-flip" in args and "--no-augment" not in args
    assert "--acquisition-offset" in args and train_py.parse_args(args).acquisition_offset


def test_train_py_keeps_the_seeds_zoom_unless_asked_and_passes_every_augmentation_flag_to_the_run():
    assert train_py.config_from_args(train_py.parse_args([])).applied_augmentation().zoom == 0.1  # the seed's ±10%
    flags = {name: 0.5 for name in train_py.AUGMENTATION_FLAGS} | {"local_contrast": 3.0, "mixup": 0.2}
    args = [part for name, value in flags.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    augmentation = train_py.config_from_args(train_py.parse_args([*args, "--no-flip"])).applied_augmentation()
    assert {name: getattr(augmentation, name) for name in flags} == flags and not augmentation.horizontal_flip
    # declared once: every Augmentation field with a value is a train.py flag, and a saved configuration reads back
    from dataclasses import asdict

    from pneumo_core.jobs.request import TrainConfig

    config = train_py.config_from_args(train_py.parse_args(args))
    assert TrainConfig(**json.loads(json.dumps(asdict(config)))) == config


class _NoJob:
    run_name, pid = "captured", 0


def test_the_training_form_starts_from_the_served_recipe_and_keeps_what_was_submitted(app_env, app_model_dir, monkeypatch):
    import shutil

    import ui.operator_actions

    served = shutil.copytree(app_model_dir, app_env / "served")
    metadata = json.loads((served / "metadata.json").read_text())
    metadata["name"], metadata["config"] = (
        "served-recipe",
        {
            "horizontal_flip": False,
            "contrast": 0.3,
            "noise": 6.0,
            "target_sensitivity": 0.98,
            "acquisition_offset": True,
            "scratch_schedule": "128:12:32,224:2:16",
            "run_name": "v15",  # about that run, not the recipe: not carried over
        },
    )
    (served / "metadata.json").write_text(json.dumps(metadata))
    monkeypatch.setenv("PNEUMO_MODEL_DIR", str(served))
    started = []
    monkeypatch.setattr(ui.operator_actions, "start_job", lambda args: started.append(args) or _NoJob())
    at = run_page("app_pages/training.py")
    assert "the served model's recipe (served-recipe)" in texts(at)
    assert not next(c for c in at.checkbox if c.label == "Horizontal flips").value
    assert next(s for s in at.selectbox if s.label == "Acquisition styles").value == "Explained (logit offset)"
    assert next(s for s in at.slider if s.label.startswith("Threshold rule")).value == 0.98
    next(b for b in at.button if b.label == "Start training").click().run()
    (args,) = started
    assert args[args.index("--contrast") + 1] == "0.3" and args[args.index("--noise") + 1] == "6" and "--no-flip" in args
    assert "--acquisition-offset" in args and args[args.index("--scratch-schedule") + 1] == "128:12:32,224:2:16"
    assert "v15" not in args and train_py.parse_args(args).target_sensitivity == 0.98
    next(t for t in at.toggle if t.key == "quick_check").set_value(True).run()
    next(b for b in at.button if b.label == "Start training").click().run()
    assert "--smoke" in started[-1]
    submitted = at.session_state["training_form_values"]
    assert submitted["smoke"] and submitted["flip"] is False
    # While a run goes on the form is not drawn and Streamlit forgets its widgets' state; drawn again, it shows what
    # was submitted (a session that kept only that: a fresh AppTest holds no widget state).
    again = AppTest.from_file(APP, default_timeout=TIMEOUT)
    again.session_state["training_form_values"] = submitted
    again.run()
    again.switch_page("app_pages/training.py").run()
    assert next(t for t in again.toggle if t.key == "quick_check").value  # the next Start is the same quick check


def test_training_page_form_and_disabled(app_env, monkeypatch):
    at = run_page("app_pages/training.py")
    assert any(b.label == "Start training" for b in at.button)
    monkeypatch.setenv("PNEUMO_TRAINING", "off")
    at = run_page("app_pages/training.py")
    assert "disabled" in texts(at) and not any(b.label == "Start training" for b in at.button)


@pytest.fixture
def running_job(app_env):
    """A current job whose process is alive (a sleeper standing in for train.py) with one epoch reported."""
    runs = app_env / "runs"
    runs.mkdir(exist_ok=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    progress = runs / "job" / "progress.jsonl"
    progress.parent.mkdir()
    epoch = {"phase": "scratch_128px", "epoch": 1, "epochs": 4, "steps": 10, "eta_s": 120}
    events = [
        {"event": "start", "time": time.time(), "pid": sleeper.pid},
        {
            "event": "epoch",
            "time": time.time(),
            "pid": sleeper.pid,
            **epoch,
            "metrics": {"loss": 0.5, "val_loss": 0.6, "auc": 0.8, "val_auc": 0.7},
        },
    ]
    progress.write_text("".join(json.dumps(e) + "\n" for e in events))
    job = {
        "run_name": "job",
        "pid": sleeper.pid,
        "run_dir": str(progress.parent),
        "progress_file": str(progress),
        "log_file": str(progress.parent / "train.log"),
        "started": "now",
    }
    (runs / "current_job.json").write_text(json.dumps(job))
    yield sleeper
    sleeper.kill()
    sleeper.wait()


def test_training_page_follows_a_running_job(app_env, running_job):
    at = run_page("app_pages/training.py")
    assert "Job job: running" in texts(at)
    assert not any(b.label == "Start training" for b in at.button)  # one job at a time
    assert any(b.label == "Cancel training" for b in at.button)
    running_job.kill()
    running_job.wait()
    at = run_page("app_pages/training.py")
    assert "Job job: failed" in texts(at) and any(b.label == "Start training" for b in at.button)


def test_validate_on_your_data_saves_and_activates_a_site_profile(app_env, app_model_dir):
    import shutil

    from pneumo_core.store.profiles import active_profile, list_profiles

    at = run_page("app_pages/metrics.py")
    assert "No site profile yet" in texts(at)
    next(t for t in at.text_input if t.label == "Site name").set_value("north")
    next(s for s in at.selectbox if s.label == "Threshold rule").set_value("youden")
    next(b for b in at.button if b.label == "Validate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Site north" in texts(at) and "optimistic" in texts(at)
    operating_points = [str(p) for frame in at.dataframe for p in frame.value.get("operating point", [])]
    assert any(p.endswith("95% confidence") for p in operating_points), operating_points  # the promise's row
    assert "Promised for this site's next" in texts(at)
    try:
        next(b for b in at.button if b.label == "Save and serve at this operating point").click().run()
        assert list_profiles(app_model_dir) == ["north"] and active_profile(app_model_dir).name == "north"
        at = run_page("app_pages/metrics.py")
        assert "site profile north" in texts(at) and "Serving at **site profile north**" in texts(at)
        assert any("site north" in str(row) for row in at.dataframe[0].value["data"])
        # the explorer starts at the serving operating point, can switch to validation and return
        profile, metadata = active_profile(app_model_dir), json.loads((app_model_dir / "metadata.json").read_text())
        slider = next(s for s in at.slider if s.key == "explore_threshold")
        assert slider.value == pytest.approx(profile.threshold)
        assert "Referral bands" in texts(at) and "Expected" not in "".join(b.label for b in at.button)
        next(r for r in at.radio if r.key == "explore_point").set_value("validation threshold").run()
        assert next(s for s in at.slider if s.key == "explore_threshold").value == pytest.approx(metadata["threshold"])
        next(s for s in at.slider if s.key == "explore_threshold").set_value(0.9).run()
        next(b for b in at.button if b.key == "reset_threshold").click().run()
        assert next(s for s in at.slider if s.key == "explore_threshold").value == pytest.approx(metadata["threshold"])
        next(b for b in at.button if b.label == "Serve at the validation threshold again").click().run()
        assert active_profile(app_model_dir) is None
        from pneumo_core.operations.audit import recent_actions

        assert [a["outcome"] for a in recent_actions()] == ["deactivated: validation threshold", "saved and activated"]
    finally:
        shutil.rmtree(app_model_dir / "site_profiles", ignore_errors=True)


def test_validate_on_your_data_is_closed_to_viewers_of_an_exposed_server(app_env):
    with bind_address("0.0.0.0"):
        at = run_page("app_pages/metrics.py")
        assert "Validate on your data" in texts(at) and "no operator password is set" in texts(at)
        assert not any(b.label == "Validate" for b in at.button)


def test_probability_scale_shows_the_marker_above_the_bars_and_the_whole_range():
    from pneumo_core.serving.answers import Prediction
    from ui.widgets import probability_scale

    figure = probability_scale(Prediction(probability=0.988, threshold=0.08, logit=4.0))
    assert all(shape.layer == "below" for shape in figure.layout.shapes)  # the dot is never hidden under a bar
    assert list(figure.data[0].x) == [0.988] and figure.data[0].text == ("98.8%",)
    assert figure.layout.xaxis.tickvals[-1] == 1 and figure.layout.xaxis.range[1] >= 1


def test_quick_check_shows_what_will_actually_run(app_env):
    at = run_page("app_pages/training.py")
    size = next(s for s in at.selectbox if s.label == "Image size")
    assert size.value == 224 and not size.disabled
    at.toggle(key="quick_check").set_value(True).run()
    size = next(s for s in at.selectbox if s.label == "Image size")
    assert size.options == ["64"] and size.disabled
    schedule = next(t for t in at.text_input if t.label.startswith("From-scratch schedule"))
    assert schedule.value == "64:1:8" and "quick check trains on 32 films at 64 px" in texts(at)


def test_a_pdf_upload_is_refused_on_the_page_with_its_reason(app_env):
    at = run_page()
    at.file_uploader(key="uploads_0").set_value([("scan.pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "application/pdf")]).run()
    assert not at.exception
    assert any("PDF document, not an image" in e.value for e in at.error)
    assert at.dataframe[0].value.loc[0, "decision"] == ""


def test_example_buttons_have_readable_names(app_env):
    at = run_page()
    labels = [b.label for b in at.button if b.key and b.key.startswith("example_")]
    assert sorted(labels) == ["Normal film 1", "Normal film 2", "Pneumonia, bacterial", "Pneumonia, viral"]


def test_the_heat_map_can_show_the_evidence_for_either_class(app_env):
    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    captions = lambda: [image.caption for element in at.get("image") for image in element.proto.imgs]  # noqa: E731
    answer = next(c for c in captions() if c.startswith("Grad-CAM: evidence for ")).split()[-1]
    other = "NORMAL" if answer == "PNEUMONIA" else "PNEUMONIA"
    at.radio(key="cam_class").set_value(other).run()
    assert not at.exception and f"Grad-CAM: evidence for {other}" in captions()
    assert [key[1:] for key in at.session_state["cams"]] == [("Grad-CAM", answer), ("Grad-CAM", other)]  # once each


def test_answers_are_monitored_and_the_monitoring_page_shows_them(app_env, monkeypatch):
    from pneumo_core.operations import answer_store

    at = run_page()
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    rows = answer_store.answers()
    assert list(rows["source"]) == ["app"] and len(rows["time"]) == 1  # one film answered, one row
    at.run()  # a re-render (sliders, reruns) answers nothing new
    assert len(answer_store.answers()["time"]) == 1
    at = run_page("app_pages/monitoring.py")
    assert "**1 answer** by" in texts(at) and "1 answers" not in texts(at)
    assert "Not enough films yet to judge drift (1 of 50" in texts(at)
    decision = answer_store.answers()["decision"][0]
    assert decision in ("NORMAL", "PNEUMONIA", "REFER") and f"1 {decision}" in texts(at)  # the stored decision, shown
    alerts = set(next(frame.value for frame in at.dataframe if "alert" in frame.value)["alert"])
    assert "too few films (1 of 50)" in alerts and all(a.startswith("too few films") for a in alerts)
    with bind_address("0.0.0.0"):  # exposed without a password: it summarises every visitor's answers
        at = run_page("app_pages/monitoring.py")
    assert "**1 answer** by" not in texts(at)


def test_a_shadow_challenger_scores_answers_and_the_monitoring_page_compares_it(app_env, app_model_dir, monkeypatch):
    """The same model as the challenger (a copy): it agrees on every film, and the page states the promotion rule."""
    import shutil
    import time

    from pneumo_core.operations import answer_store
    from ui.resources import shadow_challenger

    challenger = shutil.copytree(app_model_dir, app_env / "challenger")
    monkeypatch.setenv("PNEUMO_CHALLENGER", str(challenger))
    at = run_page()
    deadline = time.monotonic() + 120
    while shadow_challenger() is None and time.monotonic() < deadline:  # it loads in the background
        time.sleep(0.2)
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    while not len(answer_store.answers(table="shadow")["time"]) and time.monotonic() < deadline:  # scored after the answer
        time.sleep(0.2)
    rows = answer_store.answers(table="shadow")
    assert len(rows["time"]) == 1 and rows["champion_verdict"][0] == rows["challenger_verdict"][0]
    at = run_page("app_pages/monitoring.py")
    assert "Shadow challenger" in [h.value for h in at.subheader]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["films scored"] == "1" and metrics["agreement"] == "100.0%"
    assert "Promotion rule" in texts(at) and "✗ 1 films scored in the shadow" in texts(at)


def test_a_site_profile_is_saved_and_activated_where_the_served_model_is(app_env, app_model_dir, tmp_path, monkeypatch):
    """Serving a registry version (PNEUMO_MODEL_URI), a profile goes into that version's directory, not models/served."""
    import shutil

    from pneumo_core.store import mlflow_registry
    from pneumo_core.store.profiles import active_profile, list_profiles

    registry_copy = shutil.copytree(app_model_dir, tmp_path / "registry-version")
    monkeypatch.setenv("PNEUMO_MODEL_URI", "models:/pneumo-densenet121@champion")
    monkeypatch.setattr(mlflow_registry, "resolve_model_uri", lambda uri: registry_copy)

    def script():
        import json
        import os
        from pathlib import Path

        from pneumo_core.store.profiles import SiteProfile
        from ui.operator_actions import save_site_profile

        sha = json.loads((Path(os.environ["REGISTRY_COPY"]) / "metadata.json").read_text())["model_sha256"]
        empty = {"metrics": {}, "intervals": {}, "validation_operating_point": {}}
        profile = SiteProfile("north", 0.5, 1.0, "youden", "", 2, 1, 1, "data", "now", "m", sha, **empty)
        save_site_profile(profile, make_active=True)

    monkeypatch.setenv("REGISTRY_COPY", str(registry_copy))
    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert list_profiles(registry_copy) == ["north"] and active_profile(registry_copy).name == "north"
    assert list_profiles(app_model_dir) == []  # the directory not served is left alone


def test_answers_shown_follow_a_new_operating_point_not_the_old_cache(app_env, app_model_dir):
    """The page keeps answers per file *and* per model and operating point: after a profile activation the same
    film is answered again at the new point, not shown with the old verdict under the new name."""
    import json

    from pneumo_core.store.profiles import SiteProfile, activate, save_profile

    at = run_page()
    at.file_uploader(key="uploads_0").set_value([("film.png", encode(synthetic_xray(160, seed=9)), "image/png")]).run()
    assert set(at.dataframe[0].value["operating point"]) == {"validation"}
    sha = json.loads((app_model_dir / "metadata.json").read_text())["model_sha256"]
    empty = {"metrics": {}, "intervals": {}, "validation_operating_point": {}}
    profile = SiteProfile("north", 0.123, 1.0, "youden", "", 2, 1, 1, "data", "now", "m", sha, **empty, referral_band=[0.1, 0.2])
    save_profile(profile, app_model_dir)
    activate(app_model_dir, "north")
    try:
        at.run()
        table = at.dataframe[0].value
        assert set(table["operating point"]) == {"site:north"} and set(table["threshold"]) == {"0.1230"}
    finally:
        activate(app_model_dir, None)
