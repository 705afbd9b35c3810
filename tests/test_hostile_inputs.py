"""Hostile and unlucky inputs: every file gets its own record, no batch is lost, no traceback reaches a user."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pneumo_core.cli.main import main
from pneumo_core.serving import predictor as predictor_module
from pneumo_core.serving.decode import ImageDecodeError, decode_upload

from .conftest import PROJECT_ROOT
from .imaging import WINDOWED_BUT_READABLE, crafted_dicoms, encode, synthetic_xray

GOOD = encode(synthetic_xray(160, seed=4), "JPEG")


@pytest.mark.parametrize("name", sorted(crafted_dicoms()))
def test_a_crafted_dicom_is_decoded_or_refused_with_a_plain_reason(name):
    data = crafted_dicoms()[name]
    if name in WINDOWED_BUT_READABLE:
        assert decode_upload(data).gray.shape == (128, 128)  # the film's own range instead of the unusable window
    else:
        with pytest.raises(ImageDecodeError, match="DICOM"):
            decode_upload(data)


def test_a_decoder_failure_of_any_kind_costs_only_its_own_file(tiny_predictor, monkeypatch):
    real = predictor_module.decode_upload

    def flaky(payload: bytes):
        if payload == b"boom":
            raise TypeError("a library bug")
        return real(payload)

    monkeypatch.setattr(predictor_module, "decode_upload", flaky)
    cases = tiny_predictor.classify([("a.jpg", GOOD), ("b.dcm", b"boom"), ("c.jpg", GOOD)])
    assert [c.error for c in cases] == [None, predictor_module.UNEXPECTED_FILE, None]
    assert cases[0].prediction is not None and cases[2].prediction is not None


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "good.jpg").write_bytes(GOOD)
    for name, data in crafted_dicoms().items():
        (folder / name).write_bytes(data)
    return folder


def test_predict_gives_every_file_of_a_hostile_folder_its_record(capsys, tiny_model_dir, hostile_folder):
    code = main(["predict", "--model", str(tiny_model_dir), str(hostile_folder)])
    out = capsys.readouterr()
    records = {json.loads(line)["file"].rsplit("/", 1)[1]: json.loads(line) for line in out.out.splitlines()}
    assert set(records) == {"good.jpg", *crafted_dicoms()} and code == 1
    answered = {name for name, record in records.items() if "label" in record}
    assert answered == {"good.jpg", *WINDOWED_BUT_READABLE}
    assert all("DICOM" in record["error"] for name, record in records.items() if name not in answered)
    assert "Traceback" not in out.err


def test_the_real_process_prints_no_traceback_for_a_hostile_folder(tiny_model_dir, hostile_folder):
    command = [sys.executable, "-m", "pneumo_core", "predict", "--model", str(tiny_model_dir), str(hostile_folder)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 1 + len(crafted_dicoms())


def test_the_api_answers_200_with_an_error_per_crafted_file(tiny_model_dir):
    from fastapi.testclient import TestClient

    from pneumo_api import create_app

    app = create_app(tiny_model_dir, "1000/minute")
    with TestClient(app, client=("127.0.0.1", 50000)) as client:
        app.state.model.wait(120)
        files = [("files", ("good.jpg", GOOD, "image/jpeg"))]
        files += [("files", (name, data, "application/dicom")) for name, data in list(crafted_dicoms().items())[:5]]
        response = client.post("/v1/predict", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 6 and results[0]["label"] in ("NORMAL", "PNEUMONIA")
    assert all(("label" in r) != ("error" in r) for r in results) and sum("error" in r for r in results) == 2
    assert np.isfinite([r["probability"] for r in results if "probability" in r and r["probability"] is not None]).all()


@pytest.fixture
def api_client(tiny_model_dir):
    from fastapi.testclient import TestClient

    from pneumo_api import create_app

    app = create_app(tiny_model_dir, "1000/minute")
    with TestClient(app, client=("127.0.0.1", 50000), raise_server_exceptions=False) as client:
        app.state.model.wait(120)
        yield client


def test_a_server_error_is_counted_in_the_metrics(api_client, monkeypatch):
    def broken(self, named_payloads, with_maps=False):
        raise RuntimeError("a bug")

    monkeypatch.setattr(predictor_module.Predictor, "classify", broken)
    response = api_client.post("/v1/predict", files=[("files", ("good.jpg", GOOD, "image/jpeg"))])
    assert response.status_code == 500
    metrics = api_client.get("/metrics").text
    assert 'pneumo_api_requests_total{endpoint="/v1/predict",status="500"} 1.0' in metrics


def test_a_withheld_films_api_record_is_the_clis_nulls_included(api_client, capsys, tiny_model_dir, tmp_path):
    colour = encode(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8))
    (tmp_path / "photo.png").write_bytes(colour)
    main(["predict", "--model", str(tiny_model_dir), str(tmp_path / "photo.png")])
    cli = json.loads(capsys.readouterr().out)
    api = api_client.post("/v1/predict", files=[("files", ("photo.png", colour, "image/png"))]).json()["results"][0]
    assert cli["label"] is None and cli["decision"] is None and cli["probability"] is None
    assert api == {**cli, "file": "photo.png"}  # the same keys, nulls and all


@pytest.mark.parametrize(("transient", "attempts"), [(False, 1), (True, predictor_module.LOAD_ATTEMPTS)])
def test_only_a_load_failure_that_can_heal_is_retried(monkeypatch, tmp_path, transient, attempts):
    from pneumo_core.store.model_dir import ModelLoadError

    calls = []

    def failing(cls, *args):
        calls.append(args)
        raise ModelLoadError("no", transient=transient)

    monkeypatch.setattr(predictor_module.Predictor, "_load_once", classmethod(failing))
    with pytest.raises(ModelLoadError):
        predictor_module.Predictor.load(tmp_path)
    assert len(calls) == attempts
