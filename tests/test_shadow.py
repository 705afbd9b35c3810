"""The shadow challenger: scores every answered film off the critical path, stores nothing identifying, never
queues without bound, reports agreement, and is judged by a stated promotion rule; the API feeds it."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest

from devtools.imaging import encode, synthetic_xray
from pneumo_core.operations import monitoring_store
from pneumo_core.operations.shadow import MAX_PENDING, MIN_SHADOW_ANSWERS, Shadow, ShadowReport, promotion_check, shadow_report
from pneumo_core.serving.predictor import Predictor

FILMS = [(f"patient-{i}-jones.png", encode(synthetic_xray(150 + 9 * i, seed=40 + i))) for i in range(6)]


@pytest.fixture(scope="module")
def challenger_dir(tiny_model_dir, tmp_path_factory):
    """A second tiny model (other weights): it may disagree with the tiny champion."""
    import keras

    from pneumo_core.modeling.architectures import build_classifier
    from pneumo_core.modeling.saving import save_model_dir
    from pneumo_core.store.model_dir import read_metadata

    from .conftest import SERVED_MODEL  # noqa: F401 - the suite's layout, not used here

    keras.utils.set_random_seed(11)
    model = build_classifier(64, None, dropout=0.0, head_units=0)
    return save_model_dir(
        model, tmp_path_factory.mktemp("challenger") / "model", {**_tiny_metadata(read_metadata), "name": "tiny-challenger"}
    )


def _tiny_metadata(read_metadata) -> dict:
    from pneumo_core import CLASS_NAMES
    from pneumo_core.common.preprocess import preprocessing_spec

    return {
        "class_names": list(CLASS_NAMES),
        "input_size": 64,
        "preprocessing": preprocessing_spec(),
        "threshold": 0.5,
        "temperature": 1.0,
    }


def test_the_challenger_scores_every_answered_film_and_stores_nothing_identifying(tiny_predictor, challenger_dir, tmp_path):
    store = tmp_path / "monitor.db"
    challenger = Predictor.load(challenger_dir)
    shadow = Shadow(challenger, challenger_dir, store)
    cases = tiny_predictor.classify(FILMS + [("broken.png", b"not an image")])
    shadow.submit(cases, tiny_predictor, 0.3, "app").result(timeout=60)
    rows = monitoring_store.answers(location=store, table="shadow")
    assert len(rows["time"]) == len(FILMS)  # the unreadable file has no answer to shadow
    expected = challenger.predict_canonical(np.stack([c.canonical for c in cases[: len(FILMS)]]))
    assert list(rows["challenger_verdict"]) == [p.label for p in expected]
    np.testing.assert_allclose(rows["challenger_probability"].astype(float), [p.probability for p in expected], atol=1e-6)
    assert list(rows["champion_verdict"]) == [c.verdict.label for c in cases[: len(FILMS)]]
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert b"jones" not in raw and b"patient-" not in raw and b"broken" not in raw

    report = shadow_report(store=store)
    agree = np.mean(rows["champion_verdict"] == rows["challenger_verdict"])
    assert report.answers == len(FILMS) and report.agreement == pytest.approx(agree)
    assert sum(report.pairs.values()) == len(FILMS) and len(report.disagreements) == round((1 - agree) * len(FILMS))
    assert report.challengers == ["tiny-challenger"]
    assert shadow_report(champion_sha256="another model", store=store).answers == 0
    # an earlier challenger's rows are not the current one's: the promotion rule counts only its own films
    assert shadow_report(store=store, challenger_sha256=shadow.sha256).answers == len(FILMS)
    assert shadow_report(store=store, challenger_sha256="an earlier challenger").answers == 0
    shadow.close()


def test_a_busy_challenger_drops_batches_instead_of_queueing_them(tiny_predictor, tmp_path):
    release = threading.Event()

    class Slow:
        metadata = {"name": "slow", "model_sha256": "x"}

        def predict_canonical(self, canonical):
            release.wait(30)
            return tiny_predictor.predict_canonical(canonical)

    shadow = Shadow(Slow(), tmp_path, tmp_path / "monitor.db")
    cases = tiny_predictor.classify(FILMS[:1])
    futures = [shadow.submit(cases, tiny_predictor, 0.1, "api") for _ in range(MAX_PENDING + 2)]
    assert sum(f is not None for f in futures) == MAX_PENDING and shadow.dropped == 2
    release.set()
    assert sum(f.result(timeout=60) for f in futures if f is not None) == MAX_PENDING
    assert shadow.submit(cases, tiny_predictor, 0.1, "api") is not None  # room again once scored
    shadow.close()


def test_the_promotion_rule(tiny_model_dir, challenger_dir, tmp_path):
    """Only a challenger that passed the serving rule against this champion may replace it: no comparison, a
    comparison with another model, or a gain inside the site sample's noise keep the champion."""
    from pneumo_core.store.model_dir import read_metadata, record_in_metadata

    champion = shutil.copytree(tiny_model_dir, tmp_path / "champion")
    challenger = shutil.copytree(challenger_dir, tmp_path / "challenger")
    enough = ShadowReport(MIN_SHADOW_ANSWERS, 0.97, {}, [], 30.0, 20.0, ["tiny-challenger"])

    ready, reasons = promotion_check(champion, challenger, enough)
    assert not ready and "not yet compared" in reasons[1]

    def compared(passes: bool, reference: str) -> None:
        difference = {"difference": 0.01, "lower_bound": 0.002 if passes else -0.004, "interval": [0.0, 0.02]}
        result = {"reference_sha256": reference, "site": difference, "internal": {"difference": 0.0}, "passes": passes}
        record_in_metadata(challenger, comparison=result)

    champion_sha256 = read_metadata(champion)["model_sha256"]
    compared(True, "another model")
    assert not promotion_check(champion, challenger, enough)[0]  # a verdict against another champion counts for nothing
    compared(False, champion_sha256)
    ready, reasons = promotion_check(champion, challenger, enough)
    assert not ready and "bound -0.0040" in reasons[1]
    compared(True, champion_sha256)
    ready, reasons = promotion_check(champion, challenger, enough)
    assert ready and all(reason.startswith("✓") for reason in reasons)
    assert not promotion_check(champion, challenger, ShadowReport(MIN_SHADOW_ANSWERS - 1, 1.0, {}, [], 1, 1, []))[0]


def test_the_api_feeds_the_shadow_and_monitor_reports_it(tiny_model_dir, challenger_dir, tmp_path, monkeypatch, capsys):
    from pneumo_core.cli.main import main

    from .test_api import client_for

    monkeypatch.setenv("PNEUMO_MONITOR_DB", str(tmp_path / "monitor.db"))
    monkeypatch.setenv("PNEUMO_CHALLENGER", str(challenger_dir))
    client = client_for(tiny_model_dir)
    try:
        shadow = client.app.state.shadow.result(timeout=120)
        assert shadow is not None and shadow.name == "tiny-challenger"
        files = [("files", (name, payload, "image/png")) for name, payload in FILMS[:3]]
        assert client.post("/v1/predict", files=files).status_code == 200
        shadow.close()  # waits for the pending batch
    finally:
        client.__exit__(None, None, None)
    assert main(["monitor", "--model", str(tiny_model_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["answers"] == 3 and report["shadow"]["answers"] == 3 and report["shadow"]["challengers"] == ["tiny-challenger"]
