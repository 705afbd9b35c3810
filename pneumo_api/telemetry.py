"""Prometheus metrics of the API: requests by endpoint and status, latency, films answered, verdicts withheld."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Telemetry:
    def __init__(self, paths: tuple[str, ...] = ()) -> None:
        self.paths = paths  # paths refused before routing (by the upload limits) that still count under their name
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pneumo_api_requests", "Requests by endpoint and status", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "pneumo_api_request_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.films = Counter(
            "pneumo_api_films", "Films answered, by outcome (verdict, withheld, error)", ["outcome"], registry=self.registry
        )
        self.model_load = Gauge(
            "pneumo_api_model_load_seconds", "Seconds the model took to load and warm up", registry=self.registry
        )

    def count_films(self, records: list[dict]) -> None:
        for record in records:
            outcome = "error" if "error" in record else "withheld" if record["label"] is None else "verdict"
            self.films.labels(outcome).inc()

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def _measure(request: Request, call_next):
            started = time.perf_counter()
            status = 500  # an exception escaping the route becomes a 500 outside this middleware: counted as one
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                # the route's template (no file names, no query strings); an upload refused before routing counts
                # under its path
                route = request.scope.get("route")
                path = request.url.path
                endpoint = getattr(route, "path", None) or (path if path in self.paths else "unmatched")
                self.requests.labels(endpoint, str(status)).inc()
                self.latency.labels(endpoint).observe(time.perf_counter() - started)

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
