"""REST API under bounded load: a real uvicorn on loopback against the in-process Predictor on the same films.

    python -m bench.api [--requests 200]

Starts ``uvicorn pneumo_api:app`` on a free 127.0.0.1 port (:func:`tests.harness.api_server`), then sends ``--requests``
single-file ``POST /v1/predict`` requests at concurrency 1, 4 and 16 (the four example films in turn), and
records p50/p95 latency, throughput, errors and the server's memory. Baselines, measured in this process on the
same films: one ``Predictor.classify`` call per film (single-film latency) and the folder rate (every film in one
``classify`` call). Goals (issue 16): p50 at concurrency 1 ≤ 1.3 × in-process latency; throughput at concurrency
16 ≥ 0.8 × the in-process folder rate; no errors; memory flat.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from bench.common import append_results, p50_p95, rss_mb
from pneumo_core.serving.predictor import Predictor
from tests.harness import PROJECT_ROOT, api_server

READY_DEADLINE_S = 120.0


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


def load(url: str, payloads: list[tuple[str, bytes]], requests: int, concurrency: int):
    """Latencies (s), wall time (s) and the non-200 statuses of ``requests`` single-file predicts."""

    def one(index: int, client: httpx.Client) -> tuple[float, int]:
        name, payload = payloads[index % len(payloads)]
        started = time.perf_counter()
        response = client.post(f"{url}/v1/predict", files={"files": (name, payload, "image/jpeg")})
        return time.perf_counter() - started, response.status_code

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(lambda i: one(i, client), range(requests)))
        wall = time.perf_counter() - started
    latencies = np.array([seconds for seconds, _ in results])
    return latencies, wall, [status for _, status in results if status != 200]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    payloads = [(path.name, path.read_bytes()) for path in sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))]
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
        append_results(
            "REST API under load",
            f"python -m bench.api --requests {args.requests}",
            rows,
            "uvicorn, one worker, the served model on LiteRT (one interpreter, batch 1: requests are not batched "
            "together, since the TFLite graph runs one film per call); client threads on the same 2 cores.",
        )
    )


if __name__ == "__main__":
    main()
