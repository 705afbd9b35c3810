"""The REST API with FastAPI's TestClient: every endpoint and error path, auth, rate limit, CLI-equal answers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from devtools.imaging import encode, synthetic_xray
from pneumo_api import create_app
from pneumo_core.cli.main import main
from pneumo_core.serving.cams import METHOD_NAMES

from .conftest import PROJECT_ROOT, SERVED_MODEL

FILM = encode(synthetic_xray(180, seed=3))


def client_for(model_dir, rate: str = "1000/minute", client=("127.0.0.1", 50000)) -> TestClient:
    app = create_app(model_dir, rate)
    test_client = TestClient(app, client=client)
    test_client.__enter__()  # runs the lifespan: the model starts loading
    app.state.model.wait(120)
    return test_client


@pytest.fixture(scope="module")
def api(tiny_model_dir):
    client = client_for(tiny_model_dir)
    yield client
    client.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def no_configured_keys(monkeypatch, tmp_path):
    monkeypatch.delenv("PNEUMO_API_KEYS", raising=False)
    monkeypatch.delenv("PNEUMO_API_AUTH", raising=False)
    monkeypatch.delenv("PNEUMO_PUBLIC", raising=False)
    monkeypatch.setenv("PNEUMO_SECRETS_FILE", str(tmp_path / "none.toml"))


def test_health_ready_and_model(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    assert api.head("/readyz").status_code == api.head("/healthz").status_code == 200  # load balancers probe with HEAD
    info = api.get("/v1/model").json()
    assert info["name"] == "tiny-test-model" and info["operating_point"] == "validation" and info["input_size"] == 64
    assert len(info["model_sha256"]) == 64 and info["threshold"] == 0.5


def test_predict_answers_each_file_and_explains_bad_ones(api):
    files = [("files", ("a.png", FILM, "image/png")), ("files", ("broken.png", b"\x89PNG nope", "image/png"))]
    response = api.post("/v1/predict", files=files)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "tiny-test-model" and body["operating_point"] == "validation"
    first, second = body["results"]
    assert first["file"] == "a.png" and first["label"] in ("NORMAL", "PNEUMONIA") and 0 <= first["probability"] <= 1
    assert isinstance(first["logit"], float) and "promise" not in first  # no site promise at the validation point
    assert set(second) == {"file", "error"} and "damaged" in second["error"]


@pytest.mark.parametrize(
    "kwargs,status",
    [
        ({"files": []}, 422),  # no file at all
        ({"files": {"other": ("a.txt", b"x")}}, 422),  # multipart without the 'files' field
        ({"data": {"x": "1"}}, 415),  # a urlencoded form
        ({"content": b"{}", "headers": {"content-type": "application/json"}}, 415),
        ({"content": b"x", "headers": {"content-type": "multipart/form-data; boundary=x", "content-length": str(10**9)}}, 413),
    ],
)
def test_bad_requests_get_problem_json(api, kwargs, status):
    response = api.post("/v1/predict", **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json" and response.json()["title"]


def test_too_many_files_is_refused(api):
    files = [("files", (f"f{i}.png", FILM, "image/png")) for i in range(13)]
    response = api.post("/v1/predict", files=files)
    assert response.status_code == 422 and "12" in response.json()["detail"]  # the schema says maxItems 12


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam"])
def test_explain_gives_an_overlay_and_a_small_map_for_either_class(api, method):
    import base64

    from PIL import Image

    served = api.app.state.model.get()
    case = served.classify([("a.png", FILM)], with_maps=True)[0]
    for explained in ("predicted", "NORMAL", "PNEUMONIA"):
        data = {"class": explained, "method": method}
        response = api.post("/v1/explain", files={"file": ("a.png", FILM, "image/png")}, data=data)
        assert response.status_code == 200, response.text
        body = response.json()
        target = case.prediction.label if explained == "predicted" else explained
        assert body["method"] == method and body["explained_class"] == target
        heat = np.array(body["map"])
        assert heat.shape == (28, 28) and 0 <= heat.min() and heat.max() <= 1
        full = served.explain(case.canonical[None], [target], METHOD_NAMES[method])[0]  # the map the API summarises
        side = full.shape[0] // 28
        np.testing.assert_allclose(heat, full[: side * 28, : side * 28].reshape(28, side, 28, side).mean(axis=(1, 3)), atol=1e-4)
        assert Image.open(io.BytesIO(base64.b64decode(body["overlay_png_base64"]))).size == (224, 224)
    assert api.post("/v1/explain", files={"file": ("a.png", FILM, "image/png")}, data={"method": "nope"}).status_code == 422


def test_metrics_count_requests_and_films(api):
    api.post("/v1/predict", files=[("files", ("a.png", FILM, "image/png"))])
    text = api.get("/metrics").text
    assert 'pneumo_api_requests_total{endpoint="/v1/predict",status="200"}' in text, text
    assert 'pneumo_api_films_total{outcome="verdict"}' in text and "pneumo_api_model_load_seconds" in text
    assert "a.png" not in text  # no file names in telemetry


def test_keys_required_from_other_machines_and_when_configured(tiny_model_dir, monkeypatch):
    remote = client_for(tiny_model_dir, client=("203.0.113.9", 40000))
    try:
        response = remote.get("/v1/model")
        assert response.status_code == 401 and "PNEUMO_API_KEYS" in response.json()["detail"]
        assert remote.get("/healthz").status_code == 200  # health checks stay open
        monkeypatch.setenv("PNEUMO_API_KEYS", "k-one,k-two")
        assert remote.get("/v1/model", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert remote.get("/v1/model", headers={"Authorization": "Bearer k-two"}).status_code == 200
    finally:
        remote.__exit__(None, None, None)


def test_a_proxied_local_request_needs_a_key(api):
    assert api.get("/v1/model", headers={"X-Forwarded-For": "198.51.100.4"}).status_code == 401


def test_rate_limit_answers_429_with_retry_after(tiny_model_dir):
    limited = client_for(tiny_model_dir, rate="3/minute")
    try:
        statuses = [limited.get("/v1/model").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = limited.get("/v1/model")
        assert int(response.headers["Retry-After"]) >= 1 and response.headers["content-type"] == "application/problem+json"
    finally:
        limited.__exit__(None, None, None)


def test_api_answers_equal_the_cli_on_real_films(capsys):
    if not (SERVED_MODEL / "metadata.json").is_file():
        pytest.skip("no served model committed")
    examples = sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))
    main(["predict", *map(str, examples)])
    cli = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    served = client_for(None)
    try:
        files = [("files", (str(path), path.read_bytes(), "image/jpeg")) for path in examples]
        api_records = served.post("/v1/predict", files=files).json()["results"]
    finally:
        served.__exit__(None, None, None)
    assert [r["label"] for r in api_records] == [r["label"] for r in cli]
    assert [r["operating_point"] for r in api_records] == [r["operating_point"] for r in cli]
    assert np.allclose([r["probability"] for r in api_records], [r["probability"] for r in cli], atol=1e-6)
    assert api_records == cli  # the very same records


def test_answers_are_recorded_for_monitoring(api, tmp_path, monkeypatch):
    from pneumo_core.operations import monitoring_store

    monkeypatch.setenv("PNEUMO_MONITOR_DB", str(tmp_path / "monitor.db"))
    files = [("files", ("a.png", FILM, "image/png")), ("files", ("bad.png", b"nope", "image/png"))]
    assert api.post("/v1/predict", files=files).status_code == 200
    assert api.post("/v1/explain", files={"file": ("b.png", FILM, "image/png")}).status_code == 200
    rows = monitoring_store.answers()
    assert list(rows["source"]) == ["api", "api"]  # two films answered; the unreadable one left no row


def test_uploads_wait_for_room_in_the_process_budget(api):
    budget = api.app.state.upload_budget
    files = [("files", ("a.png", FILM, "image/png"))]
    budget.take(budget.limit)  # stands for uploads already in flight
    try:
        busy = api.post("/v1/predict", files=files)
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "5" and "busy" in busy.json()["title"]
    finally:
        budget.give_back(budget.limit)
    assert api.post("/v1/predict", files=files).status_code == 200 and budget.in_flight == 0


def test_a_body_that_arrives_too_slowly_ends_the_request_and_frees_its_budget():
    import asyncio

    from pneumo_api.uploads import UploadBudget, UploadGuard

    received = []

    async def endpoint(scope, receive, send):
        received.append(await receive())

    async def stalled_client():
        await asyncio.sleep(3600)  # never sends its body

    budget = UploadBudget(limit=100)
    guard = UploadGuard(endpoint, ("/v1/predict",), budget, deadline_s=0.05)
    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": [(b"content-length", b"60")]}
    asyncio.run(guard(scope, stalled_client, None))
    assert received == [{"type": "http.disconnect"}] and budget.in_flight == 0
    assert budget.take(60) and not budget.take(60) and budget.in_flight == 60  # the second would exceed the limit


def test_the_access_log_never_holds_a_query_string():
    import logging

    import pneumo_api.main  # noqa: F401 - installs the filter

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/v1/model?key=s3cret", "1.1", 401),
        None,
    )
    assert all(f.filter(record) for f in logging.getLogger("uvicorn.access").filters)
    assert "s3cret" not in record.getMessage() and "/v1/model" in record.getMessage()


def test_a_form_whose_part_headers_are_too_long_gets_a_400_that_says_what_to_fix(api):
    response = api.post("/v1/predict", files=[("files", ("a" * 9000 + ".png", FILM, "image/png"))])
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/problem+json")
    assert "under 8 KB" in response.json()["detail"] and "file name" in response.json()["detail"]
