"""Monitoring: one row per answered film, nothing identifying, retention, WAL under concurrent and killed writers,
and drift flagged for the later collection but not for the training collection's held-out patients."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from devtools.imaging import dicom_bytes, encode, synthetic_xray
from pneumo_core.cli.main import main
from pneumo_core.operations import monitor, monitoring_store

from .conftest import PROJECT_ROOT, SERVED_MODEL


def test_a_row_per_answered_film_and_nothing_identifying(tiny_predictor, tmp_path):
    store = tmp_path / "monitor.db"
    secret = "Qzxv^Monitortest"
    payloads = [
        ("patient-7731-smith.png", encode(synthetic_xray(160, seed=1))),
        ("second.dcm", dicom_bytes(synthetic_xray(128, seed=2).astype("uint16") * 16, PatientName=secret)),
        ("broken.jpeg", b"\xff\xd8\xff garbage"),
    ]
    cases = tiny_predictor.classify(payloads)
    assert monitoring_store.record(cases, tiny_predictor, "api", 0.2, store) == 2  # the unreadable file is not an answer
    rows = monitoring_store.answers(location=store)
    assert set(rows) == set(monitoring_store.COLUMNS) and len(rows["time"]) == 2
    assert list(rows["verdict"]) == [c.verdict.label for c in cases[:2]] and set(rows["source"]) == {"api"}
    np.testing.assert_allclose(rows["latency_ms"].astype(float), 100.0)
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())  # the database and its WAL files
    for needle in (secret, "patient-7731", "smith", "second.dcm", "broken"):
        assert needle.encode() not in raw, needle


def test_unknown_source_is_refused(tiny_predictor, tmp_path):
    with pytest.raises(ValueError, match="Unknown source"):
        monitoring_store.record([], tiny_predictor, "cli", 0.0, tmp_path / "m.db")


def test_rows_older_than_the_retention_are_deleted(tiny_predictor, tmp_path, monkeypatch):
    store = tmp_path / "monitor.db"
    cases = tiny_predictor.classify([("a.png", encode(synthetic_xray(160, seed=3)))])
    monkeypatch.setenv("PNEUMO_MONITOR_RETENTION_DAYS", "30")
    monkeypatch.setattr(monitoring_store.time, "time", lambda: 1_000_000_000.0)
    monitoring_store.record(cases, tiny_predictor, "app", 0.1, store)
    monkeypatch.setattr(monitoring_store.time, "time", lambda: 1_000_000_000.0 + 29 * 86400)
    monitoring_store.record(cases, tiny_predictor, "app", 0.1, store)
    assert len(monitoring_store.answers(location=store)["time"]) == 2
    monkeypatch.setattr(monitoring_store.time, "time", lambda: 1_000_000_000.0 + 31 * 86400)
    monitoring_store.record(cases, tiny_predictor, "app", 0.1, store)
    assert len(monitoring_store.answers(location=store)["time"]) == 2  # the first row is gone, the 29-day-old one kept


WRITER = """
import sys, numpy as np
from types import SimpleNamespace
from pneumo_core.operations import monitoring_store
from pneumo_core.serving.answers import Case, Prediction
case = Case("x", np.zeros((224, 224), np.uint8), Prediction(0.7, 0.5, 0.8), distance=3.0)
predictor = SimpleNamespace(metadata={"name": "m", "model_sha256": "s"}, operating_point="validation")
for _ in range(int(sys.argv[2])):
    monitoring_store.record([case], predictor, sys.argv[3], 0.01, sys.argv[1])
print("done", flush=True)
"""


def test_concurrent_writers_and_a_killed_writer_leave_a_sound_store(tmp_path):
    store = tmp_path / "monitor.db"
    run = lambda count, source: subprocess.Popen(  # noqa: E731
        [sys.executable, "-c", WRITER, str(store), str(count), source], cwd=PROJECT_ROOT, stdout=subprocess.PIPE
    )
    app, api = run(150, "app"), run(150, "api")  # as the app and the API at once
    assert app.wait(120) == 0 and api.wait(120) == 0
    rows = monitoring_store.answers(location=store)
    assert {s: int((rows["source"] == s).sum()) for s in ("app", "api")} == {"app": 150, "api": 150}
    killed = run(100_000, "app")
    deadline = time.monotonic() + 60  # it starts Python first: wait until it writes (a fixed sleep failed under load)
    while len(monitoring_store.answers(location=store)["time"]) <= 300 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    killed.send_signal(signal.SIGKILL)  # mid-write, no chance to clean up
    killed.wait()
    with sqlite3.connect(store) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert len(monitoring_store.answers(location=store)["time"]) > 300  # every committed row is there


def test_each_row_keeps_the_decision_and_a_store_written_before_decisions_gains_the_column(tmp_path):
    from types import SimpleNamespace

    from pneumo_core.serving.answers import Case, Prediction

    store = tmp_path / "old.db"
    with sqlite3.connect(store) as connection:  # the schema of a store created before decisions were recorded
        connection.execute(
            "CREATE TABLE answers (time REAL NOT NULL, source TEXT NOT NULL, model TEXT NOT NULL, model_sha256 TEXT NOT "
            "NULL, operating_point TEXT NOT NULL, verdict TEXT NOT NULL, probability REAL, logit REAL, warnings INTEGER "
            "NOT NULL, distance REAL, image_mean REAL, image_std REAL, latency_ms REAL)"
        )
        connection.execute(
            f"INSERT INTO answers VALUES ({', '.join('?' * 13)})",
            (time.time(), "app", "m", "s", "v", "NORMAL", 0.1, -2.0, 0, None, None, None, 5.0),
        )
    predictor = SimpleNamespace(metadata={"name": "m", "model_sha256": "s"}, operating_point="site:x")
    image = np.zeros((224, 224), np.uint8)
    cases = [Case(str(p), image, Prediction(p, 0.5, 0.0, (0.3, 0.8))) for p in (0.1, 0.6, 0.9)]
    cases.append(Case("photo", image, Prediction(0.9, 0.5, 0.0), withheld="not an X-ray"))
    monitoring_store.record(cases, predictor, "api", 0.1, store)
    rows = monitoring_store.answers(location=store)
    assert list(rows["decision"]) == [None, "NORMAL", "REFER", "PNEUMONIA", None]  # the old row: null, withheld: null
    window = {name: values[1:] for name, values in rows.items()}
    report = monitor.drift_report(window, None, None)
    assert report["decisions"] == {"NORMAL": 1, "PNEUMONIA": 1, "REFER": 1}
    films = {signal["name"]: signal["n"] for signal in report["drift"]["signals"]}
    assert report["drift"]["withheld_left_out"] == 1 and films["logit"] == 3  # the withheld film counted apart


def test_population_stability_index():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 2000)
    assert monitor.population_stability_index(reference, rng.normal(0, 1, 2000)) < 0.02
    assert monitor.population_stability_index(reference, rng.normal(1, 1, 2000)) > monitor.PSI_ALERT


def test_since_accepts_durations_and_dates():
    assert monitor.parse_since("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert monitor.parse_since("30m", now=1_000_000.0) == 1_000_000.0 - 1800
    assert monitor.parse_since("2026-12-01") == 1796083200.0
    assert monitor.parse_since(None) is None
    with pytest.raises(ValueError, match="duration"):
        monitor.parse_since("last week")


def _feed(store, folder_files, predictor) -> None:
    payloads = [(str(i), path.read_bytes()) for i, path in enumerate(folder_files)]
    for start in range(0, len(payloads), 32):
        monitoring_store.record(predictor.classify(payloads[start : start + 32]), predictor, "api", 0.1, store)


def _report(capsys, store) -> dict:
    assert main(["monitor", "--json", "--db", str(store), "--model", str(SERVED_MODEL)]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_later_collection_raises_the_drift_alert_and_held_out_patients_do_not(real_data, tmp_path, capsys):
    """The served model's monitor: site-sample films (collected later) against validation, and internal-test films
    (patients of the training collection never trained on)."""
    from pneumo_core.serving.predictor import Predictor

    predictor = Predictor.load(SERVED_MODEL)
    manifest = pd.read_csv(SERVED_MODEL / "evaluation" / "manifest.csv")
    internal = [real_data / "train" / f for f in manifest.loc[manifest["split"] == "test", "file"].iloc[::2]]
    _feed(tmp_path / "internal.db", internal, predictor)
    report = _report(capsys, tmp_path / "internal.db")
    assert report["answers"] == len(internal) and not report["drift"]["alert"], report
    site = sorted((real_data / "site_sample").rglob("*.jpeg"))
    _feed(tmp_path / "site.db", site, predictor)
    report = _report(capsys, tmp_path / "site.db")
    assert report["answers"] == len(site) and report["drift"]["alert"], report
    assert {s["name"] for s in report["drift"]["signals"]} == {"feature distance", "logit"}


def test_withheld_films_never_bring_a_window_to_an_all_clear():
    """52 answers of which 4 withheld: the signals saw 48 films, so the headline waits; it never says "no drift"
    below the minimum, and an alert is said whatever the count."""
    signals = [{"name": name, "n": 48, "alert": False} for name in ("logit", "feature distance")]
    report = {"answers": 52, "drift": {"alert": False, "signals": signals}}
    kind, sentence = monitor.drift_verdict(report)
    assert kind == "waiting" and "48 of 50" in sentence and "No drift" not in sentence
    report["drift"]["signals"] = [{**signal, "n": 50} for signal in signals]
    assert monitor.drift_verdict(report)[0] == "clear"
    report["drift"]["signals"][1]["n"] = 0  # no feature reference: a signal without data judges nothing
    assert monitor.drift_verdict(report)[0] == "clear"
    report["drift"]["alert"] = True
    assert monitor.drift_verdict(report)[0] == "alert"
