"""The Training page in AppTest: the form and what it starts, a running job, cancel, operator access and actions."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import train as train_py
from devtools.apptest import (
    APP,
    TIMEOUT,
    NoJob,
    bind_address,
    operator_controls,
    run_page,
    texts,
    unlock,
)


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
    import ui.operator_gate
    from pneumo_core.operations.access import Throttle

    monkeypatch.setattr(ui.operator_gate, "_THROTTLE", Throttle(free=1))
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
        time.sleep(ui.operator_gate._THROTTLE.retry_after() + 0.1)
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

        from ui.operator_actions import promote_model, roll_back_model, start_training
        from ui.operator_gate import OperatorRequired

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


def test_the_training_form_passes_the_settings_chosen_to_train_py(app_env, monkeypatch):
    import ui.operator_actions

    started = []
    monkeypatch.setattr(ui.operator_actions, "start_job", lambda args: started.append(args) or NoJob())
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
    monkeypatch.setattr(ui.operator_actions, "start_job", lambda args: started.append(args) or NoJob())
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


def test_training_page_follows_a_running_job(app_env, running_job):
    at = run_page("app_pages/training.py")
    assert "Job job: running" in texts(at)
    assert not any(b.label == "Start training" for b in at.button)  # one job at a time
    assert any(b.label == "Cancel training" for b in at.button)
    running_job.kill()
    running_job.wait()
    at = run_page("app_pages/training.py")
    assert "Job job: failed" in texts(at) and any(b.label == "Start training" for b in at.button)


def test_quick_check_shows_what_will_actually_run(app_env):
    at = run_page("app_pages/training.py")
    size = next(s for s in at.selectbox if s.label == "Image size")
    assert size.value == 224 and not size.disabled
    at.toggle(key="quick_check").set_value(True).run()
    size = next(s for s in at.selectbox if s.label == "Image size")
    assert size.options == ["64"] and size.disabled
    schedule = next(t for t in at.text_input if t.label.startswith("From-scratch schedule"))
    assert schedule.value == "64:1:8" and "quick check trains on 32 films at 64 px" in texts(at)
