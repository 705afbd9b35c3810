"""Who may call the API and how often: API keys (constant-time) and a per-client rate limit (``limits``).

The rule matches the app's operator rule (:mod:`pneumo_core.operations.access`): with no key configured, only requests
from this machine (loopback, not forwarded by a proxy) are answered without one; ``PNEUMO_API_AUTH=off``
disables keys for a deployment that authenticates in front of the API.
"""

from __future__ import annotations

import hashlib
import math
import time

from fastapi import Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from pneumo_core.config import API_KEYS_ENV, api_auth, api_keys, api_rate, marked_public
from pneumo_core.operations.access import is_loopback, password_matches

from .problems import Problem

PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


def _is_local(request: Request) -> bool:
    client = request.client.host if request.client else None
    forwarded = any(request.headers.get(name) for name in PROXY_HEADERS)
    return is_loopback(client) and not forwarded and not marked_public()


def _given_key(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


FAILED_AUTH_RATE = "10/minute"
"""Failed authentications a client may make; past it, guesses get 429 (counted per client address)."""


def _address(request: Request) -> str:
    return f"ip:{request.client.host if request.client else 'unknown'}"


def client_identity(request: Request) -> str:
    """Whom the rate limit counts: the verified key's full hash (so clients behind one proxy are told apart), else
    the client address; a bearer token the server did not verify never names a client."""
    return getattr(request.state, "verified_key", None) or _address(request)


def require_key(request: Request) -> None:
    """A dependency of every endpoint but the health checks (the upload endpoints check it before their body)."""
    mode, keys = api_auth(), api_keys()
    if mode == "off" or (mode == "auto" and not keys and _is_local(request)):
        return
    given = _given_key(request)
    if not keys:
        raise Problem(401, "An API key is required", f"Requests from other machines need a key: set {API_KEYS_ENV}.")
    if given is None or not any(password_matches(given, key) for key in keys):
        request.app.state.rate_limit.failed_authentication(request)
        raise Problem(
            401, "A valid API key is required", "Send it as 'Authorization: Bearer <key>'.", {"WWW-Authenticate": "Bearer"}
        )
    request.state.verified_key = "key:" + hashlib.sha256(given.encode()).hexdigest()


class RateLimit:
    """A moving-window limit per client, and one on failed authentications per address, in memory (one API process)."""

    def __init__(self, rate: str | None = None):
        self.item = parse(rate or api_rate())
        self.failed = parse(FAILED_AUTH_RATE)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def __call__(self, request: Request) -> None:
        self._hit(self.item, client_identity(request))

    def failed_authentication(self, request: Request) -> None:
        """Count a wrong or missing key against the client's address: 429 once it guesses too often."""
        self._hit(self.failed, "failed:" + _address(request))

    def _hit(self, item, identity: str) -> None:
        if not self.limiter.hit(item, identity):
            reset = self.limiter.get_window_stats(item, identity).reset_time
            wait = max(1, math.ceil(reset - time.time()))
            raise Problem(429, "Too many requests", f"The limit is {item}; try again in {wait} s.", {"Retry-After": str(wait)})
