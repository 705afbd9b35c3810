"""Who may change what is served: viewers and operators.

Viewers classify and read (Classify, Metrics, Model card, training status). Operators
also start or cancel training, promote or roll back models and save or activate site
profiles: anything that writes under ``models/`` or starts a process.

The rule (:func:`operator_mode`):

- an operator password is configured → operator actions after the right password;
- no password, the server bound to loopback only, not marked public and the request
  not forwarded by a proxy → operator actions for everyone (they can only be on this machine);
- otherwise → no operator actions at all.

Passwords are compared in constant time (:func:`password_matches`), and wrong tries
lock further tries for a growing time (:class:`Throttle`), shared by every session of
the server process so that opening new sessions does not reset it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from enum import Enum

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class OperatorMode(Enum):
    PASSWORD = "password"  # operator actions after the configured password
    LOCAL = "local"  # no password, loopback only: open to whoever is on this machine
    CLOSED = "closed"  # no password and reachable by others: no operator actions


def is_loopback(address: str | None) -> bool:
    """Whether a bind address only accepts connections from this machine (empty or None means every interface)."""
    if not address:
        return False
    address = address.strip()
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def operator_mode(password: str | None, bind_address: str | None, public: bool = False, forwarded: bool = False) -> OperatorMode:
    """Which rule applies (see the module docstring); ``forwarded``: the request came through a proxy."""
    if password:
        return OperatorMode.PASSWORD
    if is_loopback(bind_address) and not public and not forwarded:
        return OperatorMode.LOCAL
    return OperatorMode.CLOSED


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so neither the length nor a common prefix leaks)."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


class Throttle:
    """Wrong passwords lock the next try: none for the first ``free`` failures, then 2, 4, 8… seconds (at most
    ``max_seconds``). A success resets it; failures older than ``forget_seconds`` are forgotten."""

    def __init__(self, free: int = 3, max_seconds: float = 300.0, forget_seconds: float = 900.0, clock=time.monotonic):
        self.free, self.max_seconds, self.forget_seconds, self.clock = free, max_seconds, forget_seconds, clock
        self._failures: list[float] = []
        self._lock = threading.Lock()

    def retry_after(self) -> float:
        """Seconds until the next try is accepted (0 when it is)."""
        with self._lock:
            now = self.clock()
            self._failures = [t for t in self._failures if now - t < self.forget_seconds]
            excess = len(self._failures) - self.free
            if excess < 0 or not self._failures:
                return 0.0
            locked_until = self._failures[-1] + min(self.max_seconds, 2.0 ** (excess + 1))
            return max(0.0, locked_until - now)

    def check(self, given: str, expected: str) -> bool | None:
        """True or False for the password, or None when tries are locked (the password was not even compared)."""
        if self.retry_after() > 0:
            return None
        ok = password_matches(given, expected)
        with self._lock:
            if ok:
                self._failures.clear()
            else:
                self._failures.append(self.clock())
        return ok
