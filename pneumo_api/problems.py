"""Errors as ``application/problem+json`` (RFC 9457): a status, a plain title and what to do."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "The multipart body cannot be parsed",
    401: "An API key is required, or the one sent is not valid",
    411: "The request must say its length (Content-Length)",
    413: "The upload is too large",
    415: "The files must be sent as multipart/form-data",
    422: "The request is incomplete or malformed",
    429: "Too many requests (see Retry-After)",
    503: "The model is still loading, or none can be served",
}
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def documented(*statuses: int) -> dict[int, dict]:
    """The OpenAPI ``responses`` of an endpoint that can answer these problems (they replace FastAPI's default 422)."""
    return {status: {"description": TITLES[status], "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}} for status in statuses}


class Problem(Exception):
    """Raised by endpoints and dependencies; becomes a problem+json response."""

    def __init__(self, status: int, title: str, detail: str = "", headers: dict[str, str] | None = None):
        super().__init__(title)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


MULTIPART_HELP = (
    "The form could not be read: send the files as multipart/form-data in the field 'files', with the boundary the "
    "Content-Type declares and each part's headers (its file name among them) under 8 KB."
)
"""What a client can do about Starlette's bare "Invalid multipart data." (a part header over its 8 KB limit, a wrong
boundary, a body cut short)."""


def problem_response(status: int, title: str, detail: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Every error the app can answer with, in one format."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, error: Problem) -> JSONResponse:
        return problem_response(error.status, error.title, error.detail, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(part) for part in e.get("loc", ())[1:]) or "request" for e in error.errors())
        return problem_response(422, "The request is incomplete or malformed", f"Check: {fields}.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = MULTIPART_HELP if str(error.detail).startswith("Invalid multipart") else ""
        return problem_response(error.status_code, str(error.detail), detail, getattr(error, "headers", None))
