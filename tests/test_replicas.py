"""Several API replicas: one monitoring store on PostgreSQL, one rate limit in Redis, nginx in front.

PostgreSQL comes from ``.ci/run`` (``$PNEUMO_TEST_POSTGRES_URI``); Redis and nginx are Debian's, started here on
loopback. The deployment test runs the documented nginx configuration (``deploy/nginx.conf``) with two replicas, each in
a working directory of its own.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from starlette.requests import Request

from devtools.harness import api_server, free_port, nginx_proxy
from pneumo_api.problems import Problem
from pneumo_api.security import RateLimit
from pneumo_core.cli.main import main
from pneumo_core.operations import monitoring_store
from pneumo_core.serving.answers import Case, Prediction

from .conftest import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "normal_IM-0162-0001.jpeg"
PREDICTOR = SimpleNamespace(metadata={"name": "m", "model_sha256": "s"}, operating_point="validation")


def _case(probability: float = 0.7) -> Case:
    return Case("x", np.full((224, 224), 100, np.uint8), Prediction(probability, 0.5, 0.8), distance=3.0)


def _request(address: str = "10.1.2.3") -> Request:
    return Request({"type": "http", "client": (address, 1234), "headers": [], "method": "POST", "path": "/v1/predict"})


def _refused(limit: RateLimit, requests: int) -> int:
    refused = 0
    for _ in range(requests):
        try:
            limit(_request())
        except Problem as problem:
            assert problem.status == 429 and "Retry-After" in problem.headers
            refused += 1
    return refused


def test_the_monitoring_store_on_postgresql_creates_its_schema_and_keeps_the_retention(postgres_database, monkeypatch):
    assert monitoring_store.record([_case(0.2), _case(0.9)], PREDICTOR, "api", 0.1, postgres_database) == 2
    rows = monitoring_store.answers(location=postgres_database)
    assert list(rows["verdict"]) == ["NORMAL", "PNEUMONIA"] and set(rows) == set(monitoring_store.COLUMNS)
    monkeypatch.setenv("PNEUMO_MONITOR_RETENTION_DAYS", "1")
    monkeypatch.setattr(monitoring_store.time, "time", lambda: 4_000_000_000.0)  # far later: the two rows are past it
    assert monitoring_store.record([_case()], PREDICTOR, "app", 0.1, postgres_database) == 1
    assert list(monitoring_store.answers(location=postgres_database)["source"]) == ["app"]


WRITER = """
import sys, numpy as np
from types import SimpleNamespace
from pneumo_core.operations import monitoring_store
from pneumo_core.serving.answers import Case, Prediction
case = Case("x", np.zeros((224, 224), np.uint8), Prediction(0.7, 0.5, 0.8), distance=3.0)
predictor = SimpleNamespace(metadata={"name": "m", "model_sha256": "s"}, operating_point="validation")
for _ in range(int(sys.argv[2])):
    assert monitoring_store.record([case], predictor, sys.argv[3], 0.01, sys.argv[1]) == 1
"""


def test_processes_writing_to_one_postgresql_store_lose_no_row(postgres_database):
    def counts() -> dict[str, int]:
        sources = monitoring_store.answers(location=postgres_database)["source"]
        return {name: int((sources == name).sum()) for name in ("app", "api")}

    before = counts()
    run = lambda source: subprocess.Popen([sys.executable, "-c", WRITER, postgres_database, "100", source], cwd=PROJECT_ROOT)  # noqa: E731
    writers = [run("app"), run("api"), run("api")]
    assert [writer.wait(120) for writer in writers] == [0, 0, 0]
    assert counts() == {"app": before["app"] + 100, "api": before["api"] + 200}


def test_an_unreachable_store_costs_no_answer_and_monitor_says_which_store(capsys, caplog):
    down = f"postgresql://pneumo:s3cret@127.0.0.1:{free_port()}/monitor"  # nothing listens there
    with caplog.at_level(logging.WARNING):
        assert monitoring_store.record([_case()], PREDICTOR, "api", 0.1, down) == 0
    assert "monitoring store not written" in caplog.text
    started = time.monotonic()
    assert all(monitoring_store.record([_case()], PREDICTOR, "api", 0.1, down) == 0 for _ in range(20))
    assert time.monotonic() - started < 0.5  # while it is down, answers do not wait for it
    assert main(["monitor", "--json", "--db", down]) == 1
    error = capsys.readouterr().err
    assert "cannot be read" in error and "127.0.0.1" in error and "s3cret" not in error


def test_one_rate_limit_across_replicas_in_redis(redis_uri):
    replicas = [RateLimit("30/minute", redis_uri), RateLimit("30/minute", redis_uri)]
    refused = sum(_refused(replicas[i % 2], 1) for i in range(60))  # alternately, as a proxy spreads them
    assert refused == 30
    alone = [RateLimit("30/minute", "memory://"), RateLimit("30/minute", "memory://")]
    assert sum(_refused(alone[i % 2], 1) for i in range(60)) == 0  # each process counting alone allows twice the rate


def test_a_rate_store_that_is_down_falls_back_to_a_limit_per_replica(caplog):
    limit = RateLimit("5/minute", f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="pneumo_api"):
        assert _refused(limit, 8) == 3  # answered (fail open), yet still limited: in this process's memory
    assert "rate-limit store unreachable" in caplog.text
    limit._store_down_until = 0.0  # the retry period is over: the store is tried again, still down, memory again
    assert _refused(limit, 1) == 1


def _raw_status(url: str, request: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        return int(connection.recv(4096).split(b" ", 2)[1])


@pytest.mark.slow
def test_two_replicas_behind_nginx_share_the_monitoring_store_and_the_rate_limit(postgres_database, redis_uri, tmp_path):
    """The documented deployment (docs/deployment.md): two replicas in their own working directories, PostgreSQL for
    monitoring, Redis for the limit, nginx in front; X-Forwarded-For trusted from the proxy only; the body limit
    enforced by both."""
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (.ci/run installs Debian's package)")
    env = {
        "PNEUMO_MONITOR_DB": postgres_database,
        "PNEUMO_API_RATE_STORAGE": redis_uri,
        "PNEUMO_API_RATE": "30/minute",
        "PNEUMO_API_KEYS": "first-key,second-key",
    }
    film = EXAMPLE.read_bytes()
    with ExitStack() as stack:
        replicas = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            options = ("--forwarded-allow-ips", "127.0.0.1")  # nginx connects from 127.0.0.1; clients come from elsewhere
            replicas.append(stack.enter_context(api_server(tmp_path / f"{name}.log", cwd=folder, options=options, **env)))
        proxy = stack.enter_context(nginx_proxy([replica.url for replica in replicas], tmp_path / "nginx"))
        client = stack.enter_context(httpx.Client(timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.3")))

        def predict(url: str, key: str, **headers: str) -> int:
            files = {"files": ("film.jpeg", film, "image/jpeg")}
            return client.post(
                f"{url}/v1/predict", files=files, headers={"Authorization": f"Bearer {key}", **headers}
            ).status_code

        statuses = [predict(replicas[i % 2].url, "first-key") for i in range(60)]
        assert statuses.count(200) == 30 and statuses.count(429) == 30  # one 30/minute limit, not 30 per replica
        assert [predict(proxy, "second-key") for _ in range(2)] == [200, 200]  # the proxy, another client's key

        guesses = [predict(replicas[i % 2].url, "wrong", **{"X-Forwarded-For": f"9.9.9.{i}"}) for i in range(5)]
        guesses += [predict(proxy, "wrong", **{"X-Forwarded-For": f"8.8.8.{i}"}) for i in range(5)]
        assert guesses == [401] * 10  # a spoofed address is ignored, directly and through nginx (which overwrites it)
        assert predict(proxy, "wrong") == 429 and predict(replicas[0].url, "wrong") == 429  # one client: 127.0.0.3

        too_large = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        too_large += b"Content-Length: 400000000\r\nConnection: close\r\n\r\n"
        assert _raw_status(proxy, too_large) == 413  # refused by nginx before reading
        assert _raw_status(replicas[0].url, too_large) == 413  # and by the API itself

    report = subprocess.run(
        [sys.executable, "-m", "pneumo_core", "monitor", "--json", "--db", postgres_database],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["answers"] == 32  # every answer of both replicas, in one store
    for replica in ("a", "b"):
        assert not any(Path(tmp_path / replica).iterdir())  # nothing written in a replica's working directory


def test_a_store_lost_between_counting_and_reading_the_window_still_answers_429(monkeypatch):
    from limits.errors import StorageError

    limit = RateLimit("1/minute", "memory://")
    limit(_request())

    def store_gone(*_):
        raise StorageError(ConnectionError("gone"))

    monkeypatch.setattr(limit.limiter, "get_window_stats", store_gone)
    with pytest.raises(Problem) as refused:
        limit(_request())
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "60"
