"""Uploads in flight: a memory budget shared by every request of the process, and a deadline on receiving a body.

Each upload declares its length before its body is read (``upload_refusal`` refuses one that does not). The budget
counts the declared bytes of the uploads being received or answered: one that would take the process over
:data:`MAX_BYTES_IN_FLIGHT` is refused with 503 and ``Retry-After`` before its body is read, so concurrent uploads
cannot hold more than that (they are held about twice over while parsed). A body that is not fully received within
:data:`RECEIVE_DEADLINE_S` of the request's start (a slow or stalled client) is treated as a disconnect: the request
ends and its budget is freed.
"""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pneumo_core.serving.decode import MAX_FILE_BYTES

from . import problems

MAX_BYTES_IN_FLIGHT = 16 * MAX_FILE_BYTES
"""Declared upload bytes a process holds at once (480 MB): one full request of 12 files and then some."""
RECEIVE_DEADLINE_S = 120.0
"""Longest time to receive one upload's body (30 MB per file at a slow 3 MB/s for 12 files)."""
RETRY_AFTER_S = 5


class UploadBudget:
    """Declared bytes of the uploads in flight, taken before a body is read and given back when its answer is sent."""

    def __init__(self, limit: int = MAX_BYTES_IN_FLIGHT):
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.in_flight + size > self.limit and self.in_flight > 0:
                return False  # a single upload within the request limit is always let through when nothing else runs
            self.in_flight += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self.in_flight -= size


class UploadGuard:
    """ASGI middleware around the upload paths: the budget, and the deadline on receiving the body."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...], budget: UploadBudget, deadline_s: float = RECEIVE_DEADLINE_S):
        self.app, self.paths, self.budget, self.deadline_s = app, paths, budget, deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        size = int(declared) if declared.isdigit() else 0
        if not self.budget.take(size):
            response = problems.problem_response(
                503,
                "The server is busy with other uploads",
                f"Try again in {RETRY_AFTER_S} seconds.",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        deadline = time.monotonic() + self.deadline_s

        async def receive_in_time() -> Message:
            remaining = deadline - time.monotonic()
            try:
                return await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                return {"type": "http.disconnect"}  # the body came too slowly: the request ends as if the client left

        try:
            await self.app(scope, receive_in_time, send)
        finally:
            self.budget.give_back(size)
