"""REST API under bounded load: a real uvicorn on loopback against the in-process Predictor on the same films.

    python -m bench.api [--requests 200]
    python -m bench.api --replicas --monitor-db postgresql://USER@HOST:PORT/DB [--requests 200]

Starts ``uvicorn pneumo_api:app`` on a free 127.0.0.1 port (:func:`devtools.harness.api_server`), then sends ``--requests``
single-file ``POST /v1/predict`` requests at concurrency 1, 4 and 16 (the four example films in turn), and
records p50/p95 latency, throughput, errors and the server's memory. Baselines, measured in this process on the
same films: one ``Predictor.classify`` call per film (single-film latency) and the folder rate (every film in one
``classify`` call). Goals: p50 at concurrency 1 ≤ 1.3 × in-process latency; throughput at concurrency
16 ≥ 0.8 × the in-process folder rate; no errors; memory flat.

With ``--replicas``: the documented deployment (``deploy/nginx.conf``, :func:`devtools.harness.nginx_proxy`), two replicas
behind nginx sharing a Redis rate-limit store (started here) and the PostgreSQL monitoring store ``--monitor-db``,
against one replica with the same stores, both at concurrency 16. Goal: no error, every answer recorded.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import numpy as np

from bench.common import p50_p95, record_results, rss_mb
from devtools.harness import PROJECT_ROOT, api_server, nginx_proxy, redis_server
from pneumo_core.serving.predictor import Predictor

READY_DEADLINE_S = 120.0
BENCH_KEY = "bench-replicas-key"


def in_process(payloads: list[tuple[str, bytes]], rounds: int) -> tuple[float, float]:
    """(median seconds for one film, films per second for a folder) with the served model in this process."""
    predictor = Predictor.load()
    predictor.warm_up()
    single = [_timed(lambda p=payload: predictor.classify([p])) for _ in range(rounds) for payload in payloads]
    folder = payloads * 16
    seconds = _timed(lambda: predictor.classify(folder))
    return float(np.median(single)), len(folder) / seconds


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def load(url: str, payloads: list[tuple[str, bytes]], requests: int, concurrency: int, key: str | None = None):
    """Latencies (s), wall time (s) and the non-200 statuses of ``requests`` single-file predicts (with an API key,
    if given: a request through a proxy needs one)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def one(index: int, client: httpx.Client) -> tuple[float, int]:
        name, payload = payloads[index % len(payloads)]
        started = time.perf_counter()
        response = client.post(f"{url}/v1/predict", files={"files": (name, payload, "image/jpeg")}, headers=headers)
        return time.perf_counter() - started, response.status_code

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(lambda i: one(i, client), range(requests)))
        wall = time.perf_counter() - started
    latencies = np.array([seconds for seconds, _ in results])
    return latencies, wall, [status for _, status in results if status != 200]


def replicas(payloads: list[tuple[str, bytes]], requests: int, monitor_db: str) -> None:
    """One replica, then two behind nginx, with shared stores: throughput, errors and monitoring rows written."""
    from pneumo_core.operations.monitoring_store import answers

    concurrency, rows = 16, []
    with ExitStack() as stack:
        scratch = PROJECT_ROOT / "bench" / "out" / "replicas"  # the servers' logs stay here; replicas run in a/ and b/
        scratch.mkdir(parents=True, exist_ok=True)
        env = {
            "PNEUMO_MONITOR_DB": monitor_db,
            "PNEUMO_API_RATE_STORAGE": stack.enter_context(redis_server(scratch / "redis.log")),
            "PNEUMO_API_RATE": "1000000/minute",  # the limit is counted (in Redis) but not what is measured
            "PNEUMO_API_KEYS": BENCH_KEY,
        }
        servers = []
        for name in ("a", "b"):
            (scratch / name).mkdir(parents=True, exist_ok=True)
            options = ("--forwarded-allow-ips", "127.0.0.1")
            servers.append(
                stack.enter_context(api_server(scratch / f"{name}.log", READY_DEADLINE_S, scratch / name, options, **env))
            )
        proxy = stack.enter_context(nginx_proxy([server.url for server in servers], scratch / "nginx"))
        rates = {}
        for label, url in (("one replica, directly", servers[0].url), ("two replicas behind nginx", proxy)):
            load(url, payloads, 8, 1, BENCH_KEY)  # warm the connection path
            before = len(answers(location=monitor_db)["time"])
            latencies, wall, errors = load(url, payloads, requests, concurrency, BENCH_KEY)
            written = len(answers(location=monitor_db)["time"]) - before
            p50, p95 = p50_p95(latencies)
            rates[label] = requests / wall
            ratio = "baseline" if len(rates) == 1 else f"{rates[label] / rates['one replica, directly']:.2f} × one replica"
            rows.append(
                (
                    f"{label}: {requests} single-film POST /v1/predict at concurrency {concurrency}",
                    f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, {rates[label]:.1f} films/s, {len(errors)} errors"
                    f"{f' (statuses {sorted(set(errors))})' if errors else ''}, "
                    f"{written} of {requests - len(errors)} answers recorded",
                    ratio,
                    "no error, every answer recorded",
                )
            )
    print(
        record_results(
            "REST API: two replicas behind nginx, shared monitoring (PostgreSQL) and rate limit (Redis)",
            f"python -m bench.api --replicas --monitor-db URL --requests {requests}",
            rows,
            "uvicorn, one worker each, the served model on LiteRT; nginx (deploy/nginx.conf), Redis, PostgreSQL and the "
            "client threads all on the same 2 cores.",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--replicas", action="store_true", help="two replicas behind nginx against one (needs --monitor-db)")
    parser.add_argument("--monitor-db", default=None, help="a PostgreSQL URL for the shared monitoring store")
    args = parser.parse_args()
    payloads = [(path.name, path.read_bytes()) for path in sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))]
    if args.replicas:
        if not args.monitor_db:
            parser.error("--replicas needs --monitor-db postgresql://...")
        replicas(payloads, args.requests, args.monitor_db)
        return
    single, folder_rate = in_process(payloads, rounds=10)
    log_path = PROJECT_ROOT / "bench" / "out" / "api.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        ("in-process Predictor, one film per call (median)", f"{single * 1000:.1f} ms", "baseline", "—"),
        ("in-process Predictor, a folder (64 films in one call)", f"{folder_rate:.1f} films/s", "baseline", "—"),
    ]
    # the per-client limit is not what is measured here
    with api_server(log_path, READY_DEADLINE_S, PNEUMO_API_RATE="1000000/minute") as running:
        url, server = running.url, running.process
        load(url, payloads, 8, 1)  # warm the connection path
        memory_before = rss_mb(server.pid)
        for concurrency in (1, 4, 16):
            latencies, wall, errors = load(url, payloads, args.requests, concurrency)
            p50, p95 = p50_p95(latencies)
            rate = args.requests / wall
            if concurrency == 1:
                ratio, goal = f"p50 {p50 / single:.2f} × in-process film", "p50 ≤ 1.3 ×"
            else:
                ratio = f"{rate / folder_rate:.2f} × in-process folder rate"
                goal = "≥ 0.8 ×" if concurrency == 16 else "—"
            rows.append(
                (
                    f"{args.requests} single-film POST /v1/predict at concurrency {concurrency}",
                    f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, {rate:.1f} films/s, "
                    f"{len(errors)} errors{f' (statuses {sorted(set(errors))})' if errors else ''}",
                    ratio,
                    goal,
                )
            )
        memory_after = rss_mb(server.pid)
        rows.append(
            (
                "server memory (RSS) before → after the load",
                f"{memory_before:.0f} → {memory_after:.0f} MB",
                f"{memory_after / memory_before:.2f} ×",
                "flat",
            )
        )
    print(
        record_results(
            "REST API under load",
            f"python -m bench.api --requests {args.requests}",
            rows,
            "uvicorn, one worker, the served model on LiteRT (one interpreter, batch 1: requests are not batched "
            "together, since the TFLite graph runs one film per call); client threads on the same 2 cores.",
        )
    )


if __name__ == "__main__":
    main()
