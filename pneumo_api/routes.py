"""The endpoints: health, model facts, predict, explain, metrics."""

from __future__ import annotations

import base64
import io
import time
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from PIL import Image

from pneumo_core.config import MAX_FILES_PER_REQUEST
from pneumo_core.operations.monitoring_store import record as record_answers
from pneumo_core.serving.answers import Case, answer_record
from pneumo_core.serving.cams import METHOD_NAMES
from pneumo_core.serving.overlay import overlay
from pneumo_core.serving.predictor import Predictor

from .problems import Problem, documented
from .schemas import ExplainResponse, Health, ModelInfo, PredictResponse
from .security import require_key

MethodName = Literal[tuple(METHOD_NAMES)]  # the names of pneumo_core.serving.cams.METHOD_NAMES, as the schema's enum
MAP_SIDE = 28


def predictor(request: Request) -> Predictor:
    return request.app.state.model.get()


def rate_limited(request: Request) -> None:
    request.app.state.rate_limit(request)


guarded = [Depends(require_key), Depends(rate_limited)]
GUARDED_PROBLEMS = documented(401, 429, 503)
UPLOAD_PROBLEMS = documented(400, 401, 411, 413, 415, 422, 429, 503)
ANSWERING = {"response_model_exclude_unset": True, "tags": ["answers"], "responses": UPLOAD_PROBLEMS}
"""What the two endpoints that answer films share; their key and rate limit are checked before the body is read
(:func:`pneumo_api.main.upload_refusal`), not as dependencies that run after it."""
router = APIRouter()


@router.api_route("/healthz", methods=["GET", "HEAD"], response_model=Health, tags=["health"])
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@router.api_route("/readyz", methods=["GET", "HEAD"], response_model=Health, tags=["health"], responses=documented(503))
def readyz(request: Request) -> Health:
    """The model is loaded and warmed up (503 until then)."""
    request.app.state.model.get()
    return Health(status="ready")


@router.get("/v1/model", response_model=ModelInfo, dependencies=guarded, tags=["model"], responses=GUARDED_PROBLEMS)
def model_info(served: Annotated[Predictor, Depends(predictor)]) -> ModelInfo:
    metadata = served.metadata
    metrics = {split: {k: float(v) for k, v in values.items()} for split, values in metadata.get("metrics", {}).items()}
    if served.profile:
        metrics[served.operating_point] = {k: float(v) for k, v in served.profile.metrics.items()}
    return ModelInfo(
        name=metadata.get("name", "unnamed"),
        model_sha256=metadata["model_sha256"],
        input_size=served.input_size,
        runtime=served.runtime,
        operating_point=served.operating_point,
        threshold=served.threshold,
        temperature=served.temperature,
        promise=served.promise,
        metrics=metrics,
    )


async def _payloads(files: list[UploadFile]) -> list[tuple[str, bytes]]:
    if not files:
        raise Problem(422, "No file was sent", "Send one or more files in the multipart field 'files'.")
    if len(files) > MAX_FILES_PER_REQUEST:
        raise Problem(422, "Too many files", f"At most {MAX_FILES_PER_REQUEST} files per request.")
    return [(_printable(upload.filename) or f"file{i}", await upload.read()) for i, upload in enumerate(files)]


def _printable(name: str | None) -> str | None:
    """A file name as JSON can carry it: a client-chosen multipart charset can decode one into lone surrogates, which
    become "?" here instead of failing the whole response."""
    return name.encode("utf-8", "replace").decode("utf-8") if name else name


def _answer(request: Request, served: Predictor, payloads: list[tuple[str, bytes]], with_maps: bool) -> list[Case]:
    """Classify, record each answered film in the monitoring store (no image, no file name), and hand the films to
    the shadow challenger if one is loaded (scored after this returns)."""
    started = time.perf_counter()
    cases = served.classify(payloads, with_maps)
    seconds = time.perf_counter() - started
    record_answers(cases, served, "api", seconds)
    loading = request.app.state.shadow  # the future of the challenger, which is None when none is configured
    shadow = loading.result() if loading is not None and loading.done() else None
    if shadow is not None:
        shadow.submit(cases, served, seconds, "api")
    return cases


@router.post("/v1/predict", response_model=PredictResponse, **ANSWERING)
async def predict(
    request: Request,
    files: Annotated[
        list[UploadFile],
        File(
            description=f"chest X-rays, 1 to {MAX_FILES_PER_REQUEST} files (more are refused with 422)",
            min_length=1,
            json_schema_extra={"maxItems": MAX_FILES_PER_REQUEST},
        ),
    ],
    served: Annotated[Predictor, Depends(predictor)],
) -> dict:
    """One answer per file, in order: exactly the ``predict`` command line's records."""
    payloads = await _payloads(files)
    cases = await run_in_threadpool(_answer, request, served, payloads, False)  # off the event loop
    records = [answer_record(name, case, served.operating_point, served.promise) for (name, _), case in zip(payloads, cases)]
    request.app.state.telemetry.count_films(records)
    return {"model": served.metadata.get("name", "unnamed"), "operating_point": served.operating_point, "results": records}


@router.post("/v1/explain", response_model=ExplainResponse, **ANSWERING)
async def explain(
    request: Request,
    file: Annotated[UploadFile, File(description="one chest X-ray")],
    served: Annotated[Predictor, Depends(predictor)],
    method: Annotated[MethodName, Form()] = "gradcam",
    explained_class: Annotated[Literal["predicted", "PNEUMONIA", "NORMAL"], Form(alias="class")] = "predicted",
) -> dict:
    """The answer for one film plus a heat map (overlay PNG and a 28 × 28 map) of the evidence for a class."""
    if len((await request.form()).getlist("file")) > 1:
        raise Problem(422, "One film at a time", "Send exactly one file in the field 'file' (several: /v1/predict).")
    payloads = await _payloads([file])
    case = (await run_in_threadpool(_answer, request, served, payloads, True))[0]
    record = answer_record(payloads[0][0], case, served.operating_point, served.promise)
    request.app.state.telemetry.count_films([record])
    body = {
        "model": served.metadata.get("name", "unnamed"),
        "operating_point": served.operating_point,
        "result": record,
        "method": method,
        "explained_class": explained_class,
    }
    if case.verdict is None:  # unreadable, or not a chest X-ray: nothing to explain
        return body
    target = case.prediction.label if explained_class == "predicted" else explained_class
    heat = (await run_in_threadpool(served.explain, case.canonical[None], [target], METHOD_NAMES[method], [case.block]))[0]
    png = io.BytesIO()
    Image.fromarray(overlay(case.canonical, heat, 0.4)).save(png, format="PNG")
    size = heat.shape[0] // MAP_SIDE
    small = heat[: size * MAP_SIDE, : size * MAP_SIDE].reshape(MAP_SIDE, size, MAP_SIDE, size).mean(axis=(1, 3))
    return {
        **body,
        "explained_class": target,
        "overlay_png_base64": base64.b64encode(png.getvalue()).decode(),
        "map": np.round(small, 4).tolist(),
    }


@router.get(
    "/metrics",
    tags=["health"],
    dependencies=[Depends(require_key)],
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **documented(401)},
)
def metrics(request: Request):
    """Prometheus text: requests, latency, films answered and withheld, model load time."""
    telemetry, slot = request.app.state.telemetry, request.app.state.model
    if slot.load_seconds is not None:
        telemetry.model_load.set(slot.load_seconds)
    return telemetry.exposition()
