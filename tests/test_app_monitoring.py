"""The Monitoring page in AppTest: what was answered, drift, the shadow challenger."""

from __future__ import annotations

import time

from devtools.apptest import (
    bind_address,
    run_page,
    texts,
)

from .conftest import PROJECT_ROOT


def test_answers_are_monitored_and_the_monitoring_page_shows_them(app_env, app_model_dir, monkeypatch):
    from pneumo_core.operations import monitoring_store
    from pneumo_core.serving.predictor import Predictor

    at = run_page()
    example = next(b for b in at.button if b.key and b.key.startswith("example_"))
    example.click().run()
    film = PROJECT_ROOT / "examples" / example.key.removeprefix("example_")
    (case,) = Predictor.load(app_model_dir).classify([(film.name, film.read_bytes())])
    rows = monitoring_store.answers()
    assert list(rows["source"]) == ["app"] and len(rows["time"]) == 1  # one film answered, one row
    at.run()  # a re-render (sliders, reruns) answers nothing new
    assert len(monitoring_store.answers()["time"]) == 1
    at = run_page("app_pages/monitoring.py")
    assert "**1 answer** by" in texts(at) and "1 answers" not in texts(at)
    assert "Not enough films yet to judge drift (1 of 50" in texts(at)
    decision = monitoring_store.answers()["decision"][0]
    assert decision == case.verdict.decision and f"1 {decision}" in texts(at)  # the film's decision, stored and shown
    alerts = set(next(frame.value for frame in at.dataframe if "alert" in frame.value)["alert"])
    assert "too few films (1 of 50)" in alerts and all(a.startswith("too few films") for a in alerts)
    with bind_address("0.0.0.0"):  # exposed without a password: it summarises every visitor's answers
        at = run_page("app_pages/monitoring.py")
    assert "**1 answer** by" not in texts(at)


def test_a_shadow_challenger_scores_answers_and_the_monitoring_page_compares_it(app_env, app_model_dir, monkeypatch):
    """The same model as the challenger (a copy): it agrees on every film, and the page states the promotion rule."""
    import shutil

    from pneumo_core.operations import monitoring_store
    from ui.resources import shadow_challenger

    challenger = shutil.copytree(app_model_dir, app_env / "challenger")
    monkeypatch.setenv("PNEUMO_CHALLENGER", str(challenger))
    at = run_page()
    deadline = time.monotonic() + 120
    while shadow_challenger() is None and time.monotonic() < deadline:  # it loads in the background
        time.sleep(0.2)
    next(b for b in at.button if b.key and b.key.startswith("example_")).click().run()
    while not len(monitoring_store.answers(table="shadow")["time"]) and time.monotonic() < deadline:  # scored after the answer
        time.sleep(0.2)
    rows = monitoring_store.answers(table="shadow")
    assert len(rows["time"]) == 1 and rows["champion_verdict"][0] == rows["challenger_verdict"][0]
    at = run_page("app_pages/monitoring.py")
    assert "Shadow challenger" in [h.value for h in at.subheader]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["films scored"] == "1" and metrics["agreement"] == "100.0%"
    assert "Promotion rule" in texts(at) and "✗ 1 films scored in the shadow" in texts(at)
