"""Who may call the API and how often: API keys (constant-time) and a per-client rate limit (``limits``).

The rule matches the app's operator rule (:mod:`pneumo_core.operations.access`): with no key configured, only requests
from this machine (loopback, not forwarded by a proxy) are answered without one; ``PNEUMO_API_AUTH=off``
disables keys for a deployment that authenticates in front of the API.

The client address is the connection's peer, or what ``X-Forwarded-For`` says only when the peer is a proxy uvicorn
was told to trust (``--forwarded-allow-ips``; its default trusts 127.0.0.1 alone): a client cannot pick an address.

The limits are counted in ``$PNEUMO_API_RATE_STORAGE`` (:func:`pneumo_core.config.api_rate_storage`): this process's
memory, or Redis shared by every replica. When the shared store cannot be reached, requests are not refused for it:
each replica counts in its own memory until the store answers again (fail open to a per-replica limit, logged), so an
outage of Redis neither takes the API down nor lifts every limit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from pneumo_core.config import ApiSettings, access_settings, api_settings
from pneumo_core.operations.access import is_loopback, password_matches

from .problems import Problem

log = logging.getLogger("pneumo_api")

PROXY_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded")


def _is_local(request: Request) -> bool:
    client = request.client.host if request.client else None
    forwarded = any(request.headers.get(name) for name in PROXY_HEADERS)
    return is_loopback(client) and not forwarded and not access_settings().public


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
    settings = api_settings()
    mode, keys = settings.auth, settings.keys
    if mode == "off" or (mode == "auto" and not keys and _is_local(request)):
        return
    given = _given_key(request)
    if not keys:
        needed = f"Requests from other machines need a key: set {ApiSettings.variable('keys')}."
        raise Problem(401, "An API key is required", needed)
    request.app.state.rate_limit.refuse_locked_out(request)  # while locked out, no key is tried: a hit looks like a miss
    if given is None or not any(password_matches(given, key) for key in keys):
        request.app.state.rate_limit.failed_authentication(request)
        raise Problem(
            401, "A valid API key is required", "Send it as 'Authorization: Bearer <key>'.", {"WWW-Authenticate": "Bearer"}
        )
    request.state.verified_key = "key:" + hashlib.sha256(given.encode()).hexdigest()


STORE_TIMEOUT_S = 0.5
"""How long a request waits for the shared rate-limit store before counting in this process's memory instead."""
STORE_RETRY_S = 10.0
"""After the shared store failed, how long this process counts in memory before it tries the store again."""


class RateLimit:
    """A moving-window limit per client, and one on failed authentications per address, counted in the store of
    ``storage`` (default ``$PNEUMO_API_RATE_STORAGE``), with this process's memory standing in while it is down."""

    def __init__(self, rate: str | None = None, storage: str | None = None):
        self.item = parse(rate or api_settings().rate)
        self.failed = parse(FAILED_AUTH_RATE)
        uri = storage or api_settings().rate_storage
        shared = uri.split(":", 1)[0] != "memory"
        options = {"socket_timeout": STORE_TIMEOUT_S, "socket_connect_timeout": STORE_TIMEOUT_S} if shared else {}
        self.limiter = MovingWindowRateLimiter(storage_from_string(uri, wrap_exceptions=True, **options))
        self.local = MovingWindowRateLimiter(MemoryStorage()) if shared else self.limiter
        self._store_down_until = 0.0  # monotonic time before which the shared store is not tried again

    def __call__(self, request: Request) -> None:
        self._hit(self.item, client_identity(request))

    def failed_authentication(self, request: Request) -> None:
        """Count a wrong or missing key against the client's address: 429 once it guesses too often."""
        self._hit(self.failed, "failed:" + _address(request))

    def refuse_locked_out(self, request: Request) -> None:
        """429 for an address that used up its failed authentications, whatever key it sends now (the right one
        included), until its window frees a slot."""
        identity = "failed:" + _address(request)
        limiter = self.local if time.monotonic() < self._store_down_until else self.limiter
        try:
            locked = not limiter.test(self.failed, identity)
        except StorageError:
            locked = not self.local.test(self.failed, identity)
        if locked:
            self._refuse(limiter, self.failed, identity)

    def _hit(self, item: RateLimitItem, identity: str) -> None:
        limiter = self.local if time.monotonic() < self._store_down_until else self.limiter
        try:
            allowed = limiter.hit(item, identity)
        except StorageError as error:
            log.warning("rate-limit store unreachable (%s): counting in this process for %.0f s", error, STORE_RETRY_S)
            self._store_down_until = time.monotonic() + STORE_RETRY_S
            limiter = self.local
            allowed = limiter.hit(item, identity)
        if not allowed:
            self._refuse(limiter, item, identity)

    @staticmethod
    def _refuse(limiter: MovingWindowRateLimiter, item: RateLimitItem, identity: str) -> None:
        try:
            wait = max(1, math.ceil(limiter.get_window_stats(item, identity).reset_time - time.time()))
        except StorageError:  # the store went down between the two calls: the whole window, to be safe
            wait = item.get_expiry()
        raise Problem(429, "Too many requests", f"The limit is {item}; try again in {wait} s.", {"Retry-After": str(wait)})
