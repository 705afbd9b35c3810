"""Hostile and unlucky inputs: every file gets its own record, no batch is lost, no traceback reaches a user."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from devtools.imaging import (
    WINDOWED_BUT_READABLE,
    crafted_dicoms,
    deflated_dicom_bomb,
    dicom_bytes,
    encapsulated_dicom,
    encode,
    rescanned_jpeg,
    synthetic_xray,
)
from pneumo_core.cli.main import main
from pneumo_core.serving import predictor as predictor_module
from pneumo_core.serving.decode import ImageDecodeError, decode_upload

from .conftest import PROJECT_ROOT

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
    assert "Warning" not in done.stderr and "Invalid value" not in done.stderr  # no library warning, no file's value
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


def _asgi_post(app, headers: dict[str, str], chunks: list[bytes], client=("10.0.0.9", 40000)) -> tuple[int, int]:
    """(status, how many body chunks the app pulled) for a raw ASGI POST /v1/predict."""
    import anyio

    pulled, status = [0], [0]
    messages = [{"type": "http.request", "body": chunk, "more_body": i + 1 < len(chunks)} for i, chunk in enumerate(chunks)]

    async def receive():
        if pulled[0] < len(messages):
            pulled[0] += 1
            return messages[pulled[0] - 1]
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/predict",
        "raw_path": b"/v1/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }
    anyio.run(app, scope, receive, send)
    return status[0], pulled[0]


MULTIPART = "multipart/form-data; boundary=xyz"


def test_uploads_are_refused_before_their_body_is_read(tiny_model_dir, monkeypatch):
    from pneumo_api import create_app

    monkeypatch.setenv("PNEUMO_API_KEYS", "a-real-key")
    app = create_app(tiny_model_dir, "1000/minute")
    body = [b"x" * 1024] * 4
    # no key, or a wrong one: refused without reading a byte
    assert _asgi_post(app, {"content-length": "4096", "content-type": MULTIPART}, body) == (401, 0)
    wrong = {"content-length": "4096", "content-type": MULTIPART, "authorization": "Bearer guess"}
    assert _asgi_post(app, wrong, body) == (401, 0)
    # a chunked body has no length to check in advance: refused, with or without a Content-Length beside it
    chunked = {"transfer-encoding": "chunked", "content-type": MULTIPART, "authorization": "Bearer a-real-key"}
    assert _asgi_post(app, chunked, body) == (411, 0)
    assert _asgi_post(app, {**chunked, "content-length": "100"}, body) == (411, 0)


def test_a_body_longer_than_declared_is_cut_at_the_limit(tiny_model_dir, monkeypatch):
    import pneumo_api.main as api_main

    monkeypatch.setattr(api_main, "MAX_BODY_BYTES", 64 * 1024)
    app = api_main.create_app(tiny_model_dir, "1000/minute")
    part = b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    chunks = [part] + [b"x" * 16 * 1024] * 64  # a 1 MB file part behind a Content-Length of 100
    status, pulled = _asgi_post(app, {"content-length": "100", "content-type": MULTIPART}, chunks, client=("127.0.0.1", 1))
    assert status == 413 and pulled <= 5  # stopped once the bytes received passed the limit, not at the end


def test_multipart_is_recognised_in_any_case(api_client):
    import httpx

    encoded = httpx.Request("POST", "http://x/v1/predict", files=[("files", ("good.jpg", GOOD, "image/jpeg"))])
    content_type = encoded.headers["content-type"].replace("multipart/form-data", "Multipart/Form-Data")
    response = api_client.post("/v1/predict", content=encoded.read(), headers={"content-type": content_type})
    assert response.status_code == 200 and response.json()["results"][0]["file"] == "good.jpg"


def test_guessing_keys_is_rate_limited_and_unverified_tokens_name_no_client(tiny_model_dir, monkeypatch):
    from fastapi.testclient import TestClient

    from pneumo_api import create_app
    from pneumo_api.security import FAILED_AUTH_RATE

    allowed = int(FAILED_AUTH_RATE.split("/")[0])
    monkeypatch.setenv("PNEUMO_API_KEYS", "the-key")
    with TestClient(create_app(tiny_model_dir, "1000/minute"), client=("10.0.0.7", 1)) as client:
        statuses = [client.get("/v1/model", headers={"Authorization": f"Bearer guess-{i}"}).status_code for i in range(30)]
        right_key = client.get("/v1/model", headers={"Authorization": "Bearer the-key"})
    assert statuses[:allowed] == [401] * allowed and set(statuses[allowed:]) == {429}
    assert right_key.status_code == 429 and "Retry-After" in right_key.headers  # locked out: the right key too
    monkeypatch.delenv("PNEUMO_API_KEYS")
    with TestClient(create_app(tiny_model_dir, "2/minute"), client=("127.0.0.1", 1)) as client:  # no key needed here
        statuses = [client.get("/v1/model", headers={"Authorization": f"Bearer random-{i}"}).status_code for i in range(3)]
    assert statuses[2] == 429  # each random token is not a fresh client: the address is


def test_a_failed_model_load_names_no_server_path_and_is_retried(tmp_path, monkeypatch, caplog):
    from fastapi.testclient import TestClient

    import pneumo_api.main as api_main

    missing = tmp_path / "secret-location" / "model"
    app = api_main.create_app(missing, "1000/minute")
    with TestClient(app) as client:
        with pytest.raises(Exception):  # noqa: B017 - the load's own error, whatever it is
            app.state.model.wait(120)
        first = client.get("/readyz")
        assert first.status_code == 503 and "secret-location" not in first.text and "tries again" in first.text
        assert any("secret-location" in record.getMessage() for record in caplog.records)  # the operator's log has it
        failed_load = app.state.model._future
        client.get("/readyz")  # within the wait: no new load
        assert app.state.model._future is failed_load
        monkeypatch.setattr(api_main, "RELOAD_AFTER_S", 0.0)
        client.get("/readyz")  # past it: loading starts again
        assert app.state.model._future is not failed_load


def test_explain_takes_one_file_of_one_files_size(api_client):
    two = [("file", ("a.jpg", GOOD, "image/jpeg")), ("file", ("b.jpg", GOOD, "image/jpeg"))]
    response = api_client.post("/v1/explain", files=two)
    assert response.status_code == 422 and "exactly one file" in response.json()["detail"]
    assert api_client.post("/v1/explain", files=two[:1]).status_code == 200
    oversized = api_client.post(
        "/v1/explain", content=b"x", headers={"content-type": MULTIPART, "content-length": str(40 * 2**20)}
    )
    assert oversized.status_code == 413


def test_the_docs_page_loads_nothing_from_outside(api_client):
    import re

    page = api_client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert sources and all(source.startswith("/") for source in sources), sources  # this server only, no CDN
    for source in sources:
        assert api_client.get(source).status_code == 200, source


@pytest.mark.parametrize("route", ["/v1/predict", "/v1/explain"])
def test_a_client_chosen_charset_decoding_names_to_lone_surrogates_loses_no_answer(api_client, route):
    """``charset=unicode_escape`` turns a part named ``\\ud800.jpeg`` into a lone surrogate that JSON cannot carry:
    the name is answered with "?" in its place, never a 500 that loses the batch."""
    film = encode(synthetic_xray(96, seed=4), "JPEG")
    count, field = (1, b"file") if route.endswith("explain") else (3, b"files")
    body = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="' + field + b'"; filename="\\ud800-' + str(i).encode() + b'.jpeg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + film + b"\r\n"
        for i in range(count)
    )
    body += b"--b--\r\n"
    response = api_client.post(
        route, content=body, headers={"content-type": "multipart/form-data; charset=unicode_escape; boundary=b"}
    )
    assert response.status_code == 200, response.text[:300]
    results = response.json()["results"] if "results" in response.json() else [response.json()["result"]]
    assert len(results) == count and all(r.get("label") in ("NORMAL", "PNEUMONIA") for r in results)


def _peak_bytes(decode, data: bytes) -> tuple[object, int]:
    """What ``decode(data)`` returned or raised, and the most memory Python and NumPy held meanwhile."""
    tracemalloc.start()
    try:
        try:
            outcome = decode(data)
        except ImageDecodeError as error:
            outcome = error
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_deflated_dicom_that_inflates_to_gigabytes_is_refused_without_inflating_it():
    bomb = deflated_dicom_bomb(200 * 2**20)  # 200 MB of zeros in about 200 KB
    assert len(bomb) < 2**20
    outcome, peak = _peak_bytes(decode_upload, bomb)
    assert isinstance(outcome, ImageDecodeError) and "inflates to more than" in str(outcome)
    assert peak < 16 * 2**20  # read in 1 MB pieces, none kept (pydicom alone holds all 200 MB)


def test_a_small_deflated_dicom_still_decodes():
    assert decode_upload(deflated_dicom_bomb(2**20)).gray.shape == (64, 64)


def test_a_jpeg_repeating_its_scans_is_refused_at_once_and_an_ordinary_progressive_one_decodes():
    film = np.asarray(synthetic_xray(96, seed=2))
    film = np.kron(film, np.ones((20, 20), dtype=np.uint8))  # 1920 px: each scan is a pass over 3.7 megapixels
    assert decode_upload(rescanned_jpeg(film, 0)).gray.shape == film.shape
    hostile = rescanned_jpeg(film, 200)
    started = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="repeats its scans"):
        decode_upload(hostile)
    assert time.perf_counter() - started < 1.0  # refused from its markers, not decoded


def test_a_dicom_frame_larger_than_its_header_says_is_refused():
    frame = encode(synthetic_xray(96), "JPEG")  # 96 × 96, declared as 48 × 48
    with pytest.raises(ImageDecodeError, match="frame is 96 × 96 pixels but its header says 48 × 48"):
        decode_upload(encapsulated_dicom(frame, 48, 48))
    assert decode_upload(encapsulated_dicom(frame, 96, 96)).gray.shape == (96, 96)


def test_a_dicom_that_would_need_too_much_memory_is_refused_from_its_header():
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_bytes(np.zeros((8, 8), dtype=np.uint16))))
    dataset.Rows, dataset.Columns, dataset.SamplesPerPixel, dataset.BitsAllocated = 7000, 7000, 3, 32
    dataset.PhotometricInterpretation, dataset.PlanarConfiguration = "RGB", 0
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    with pytest.raises(ImageDecodeError, match="would take 561 MB of memory"):
        decode_upload(buffer.getvalue())


def test_a_large_dicom_decodes_in_a_bounded_working_set():
    side = 3000
    film = np.kron(synthetic_xray(100, seed=5).astype(np.uint16) * 16, np.ones((30, 30), dtype=np.uint16))
    data = dicom_bytes(film, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=1000, WindowWidth=3000)
    outcome, peak = _peak_bytes(decode_upload, data)
    assert outcome.gray.shape == (side, side)
    # the file and pydicom's copy of its pixel data, the uint16 pixels, one float32 plane and the uint8 result, plus
    # float64 strips (windowing the whole film in float64, as pydicom does, holds over 3 × 72 MB on top)
    assert peak < 2 * len(data) + side * side * (2 + 4 + 1) + 24 * 2**20


def test_a_colour_dicom_decodes_from_its_luma_without_a_float_rgb_copy():
    side = 3000
    rgb = np.zeros((side, side, 3), np.uint8)
    rgb[::50] = (200, 120, 40)
    data = encapsulated_dicom(encode(rgb, "JPEG"), side, side, colour=True)
    outcome, peak = _peak_bytes(decode_upload, data)
    assert outcome.gray.shape == (side, side) and outcome.gray.max() == 255
    # the decoder's YCbCr and one copy of it, a float32 plane, the uint8 result (converted to RGB: over 220 MB)
    assert peak < 2 * len(data) + side * side * (2 * 3 + 4 + 1) + 8 * 2**20


def test_a_dicom_written_without_its_preamble_is_read():
    data = dicom_bytes(synthetic_xray(64).astype(np.uint16) * 16)
    assert np.array_equal(decode_upload(data[132:]).gray, decode_upload(data).gray)


@pytest.mark.parametrize("fraction", [0.001, 0.3, 0.999])
def test_a_truncated_jpeg_declaring_a_large_size_is_reported_damaged(fraction):
    film = np.kron(synthetic_xray(100, seed=6), np.ones((40, 40), dtype=np.uint8))  # 4000 × 4000
    data = encode(film, "JPEG")
    with pytest.raises(ImageDecodeError, match="damaged or incomplete"):
        decode_upload(data[: min(int(len(data) * fraction) + 400, len(data) - 2)])
