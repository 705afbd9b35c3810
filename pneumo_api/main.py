"""The FastAPI application: the served model loads once, in the background, on the app's runtime."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.formparsers import MultiPartParser
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from swagger_ui_bundle import swagger_ui_path

from pneumo_core import DISCLAIMER
from pneumo_core.config import MAX_FILES_PER_REQUEST, SettingError, check_settings, serving_settings
from pneumo_core.operations.shadow import load_shadow
from pneumo_core.serving.decode import MAX_FILE_BYTES
from pneumo_core.serving.predictor import Predictor

from . import problems
from .routes import router
from .security import RateLimit, require_key
from .telemetry import Telemetry
from .uploads import UploadBudget, UploadGuard

log = logging.getLogger("pneumo_api")

MAX_BODY_BYTES = MAX_FILES_PER_REQUEST * MAX_FILE_BYTES + 64 * 1024
MAX_EXPLAIN_BYTES = MAX_FILE_BYTES + 64 * 1024
"""``/v1/explain`` takes one file: its declared body may not exceed one file's limit."""
UPLOAD_PATHS = ("/v1/predict", "/v1/explain")
DOCS_ASSETS = "/docs-assets"
RELOAD_AFTER_S = 30.0
"""A failed model load is started again once this long has passed since it was first reported."""


class WithoutQueryStrings(logging.Filter):
    """uvicorn's access log without query strings: a client that puts its key (or anything else) in the URL does not
    get it written to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


logging.getLogger("uvicorn.access").addFilter(WithoutQueryStrings())

# Uploads are patient data: keep every part in memory (Starlette spools parts over 1 MB to a temporary file).
# The request body is capped at MAX_BODY_BYTES before it is read, so memory stays bounded.
MultiPartParser.spool_max_size = MAX_BODY_BYTES


class ModelSlot:
    """The predictor, loading in a background thread until ready (``/readyz`` says which)."""

    def __init__(self, model_dir: Path | None):
        self.model_dir = model_dir
        self.load_seconds: float | None = None
        self._failed_at: float | None = None  # when a failed load was first reported
        self._future: Future | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")

    def start(self) -> None:
        """Start loading. A lifespan that starts again (as an in-process test client's does) keeps a load that is
        running or done, and retries one that failed."""
        failed = self._future is not None and self._future.done() and self._future.exception() is not None
        if self._future is None or failed:
            self._future = self._pool.submit(self._load)

    def _load(self) -> Predictor:
        started = time.perf_counter()
        predictor = Predictor.load(self.model_dir, runtime=serving_settings().runtime)
        predictor.warm_up()
        self.load_seconds = time.perf_counter() - started
        log.info("model %s ready on %s in %.2f s", predictor.metadata.get("name"), predictor.runtime, self.load_seconds)
        return predictor

    def get(self) -> Predictor:
        """The predictor; a 503 while it loads or after a failed load. A failed load is logged (with its reason,
        which names server paths, for the operator only) and started again after :data:`RELOAD_AFTER_S`."""
        if self._future is None or not self._future.done():
            raise problems.Problem(503, "The model is still loading", "Try again in a few seconds.", {"Retry-After": "2"})
        error = self._future.exception()
        if error is not None:
            if self._failed_at is None:
                self._failed_at = time.monotonic()
                log.error("the model could not be loaded: %s", error)
            elif time.monotonic() - self._failed_at > RELOAD_AFTER_S:
                self._failed_at = None
                self._future = self._pool.submit(self._load)
            raise problems.Problem(
                503, "No model can be served", "The model could not be loaded; the server tries again.", {"Retry-After": "30"}
            )
        return self._future.result()

    def wait(self, timeout: float | None = None) -> Predictor:
        self._future.result(timeout=timeout)
        return self.get()


def create_app(model_dir: Path | None = None, rate: str | None = None) -> FastAPI:
    """A new application serving ``model_dir`` (default: the served model), with its own rate limit and metrics."""
    slot, telemetry = ModelSlot(model_dir), Telemetry(UPLOAD_PATHS)
    shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-loader")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        slot.start()
        if app.state.shadow is None:
            app.state.shadow = shadow_pool.submit(load_shadow, serving_settings().runtime)  # $PNEUMO_CHALLENGER, if set
        yield

    app = FastAPI(
        title="pneumo",
        version="1",
        summary="Pneumonia on pediatric chest X-rays: a research demo. " + DISCLAIMER,
        lifespan=lifespan,
        docs_url=None,  # served below from the package's own Swagger UI files, not from a CDN
        redoc_url=None,
    )
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI for the OpenAPI schema, its scripts and styles served by this server (an offline hospital
        network reaches no CDN)."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="pneumo API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    app.state.model = slot
    app.state.shadow = None  # the future of the shadow challenger (pneumo_core.operations.shadow), once the app starts
    app.state.telemetry = telemetry
    app.state.rate_limit = RateLimit(rate)
    problems.install(app)

    # Innermost: counts the bytes actually received and stops at the limit, whatever the headers declared (a chunked
    # body, or a Content-Length smaller than what follows).
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=MAX_BODY_BYTES)
    # Then, once the checks below let an upload in: room in the process's budget of bytes in flight, and a deadline
    # for its body to arrive.
    app.state.upload_budget = UploadBudget()
    app.add_middleware(UploadGuard, paths=UPLOAD_PATHS, budget=app.state.upload_budget)

    @app.middleware("http")
    async def guard_uploads(request: Request, call_next):
        """Before an upload's body is read: its declared size and type, the API key and the rate limit."""
        if request.method == "POST" and request.url.path in UPLOAD_PATHS:
            refusal = upload_refusal(request)
            if refusal is not None:
                return refusal
        return await call_next(request)

    telemetry.install(app)  # outermost: counts every answer, refusals included
    app.include_router(router)
    return app


def upload_refusal(request: Request) -> JSONResponse | None:
    """Why an upload is refused before its body is read, or None: a chunked body (no length to check), no or too
    large a Content-Length, not multipart, a missing or wrong key, or over the rate limit (counted once, here)."""
    if "transfer-encoding" in request.headers:
        return problems.problem_response(411, "The request must say its length (Content-Length), not be chunked")
    length = request.headers.get("content-length")
    if length is None:
        return problems.problem_response(411, "The request must say its length (Content-Length)")
    limit = MAX_EXPLAIN_BYTES if request.url.path == "/v1/explain" else MAX_BODY_BYTES
    if not length.isdigit() or int(length) > limit:
        return problems.problem_response(
            413, "The upload is too large", f"At most {MAX_FILES_PER_REQUEST} files of {MAX_FILE_BYTES // 2**20} MB."
        )
    empty = int(length) == 0  # nothing sent at all: the endpoint answers 422 (no file)
    if not empty and not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return problems.problem_response(415, "Send the files as multipart/form-data in the field 'files'")
    try:
        require_key(request)
        request.app.state.rate_limit(request)
    except problems.Problem as problem:
        return problems.problem_response(problem.status, problem.title, problem.detail, problem.headers)
    return None


try:
    check_settings()  # a wrong PNEUMO_* value stops the server before it starts, named (no traceback)
except SettingError as error:
    raise SystemExit(f"error: {error}") from None
app = create_app()
