"""Who may use the cockpit: bearer token or session cookie, failed-login throttling, CORS.

* No token configured (loopback only, enforced by ``ApiConfig``): every request passes.
* A token configured: every ``/api`` request needs ``Authorization: Bearer <token>`` or the
  session cookie that ``POST /api/v1/login`` sets (HttpOnly, SameSite=Strict; a random
  id, never the token). The dashboard's static files carry no data and stay public.
* ``max_failed_logins`` wrong tokens from one address within ``login_window_s`` lock that
  address out (HTTP 429, ``Retry-After``) for ``lockout_s``, right token or not.
* CORS headers only for the configured ``cors_origins``; none by default.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from bot.config.cockpit import ApiConfig

SESSION_COOKIE = "nb_session"
MAX_SESSIONS = 64


class LoginThrottle:
    def __init__(self, max_failures: int, window_s: float, lockout_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._monotonic = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    def locked_for(self, client: str) -> float:
        """Seconds ``client`` stays locked out (0 when it is not)."""
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self._monotonic()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> None:
        now = self._monotonic()
        times = self._failures.setdefault(client, deque())
        times.append(now)
        while times and times[0] < now - self.window_s:
            times.popleft()
        if len(times) >= self.max_failures:
            self._locked[client] = now + self.lockout_s
            del self._failures[client]

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class Authenticator:
    def __init__(self, config: ApiConfig) -> None:
        self._token = config.token.get_secret_value().encode() if config.token is not None else None
        self.throttle = LoginThrottle(config.max_failed_logins, config.login_window_s, config.lockout_s)
        self._sessions: deque[str] = deque(maxlen=MAX_SESSIONS)

    @property
    def required(self) -> bool:
        return self._token is not None

    def token_ok(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(given.encode(), self._token)

    def session_ok(self, cookie: str | None) -> bool:
        return bool(cookie) and any(hmac.compare_digest(cookie or "", s) for s in self._sessions)

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self._sessions.append(session)
        return session


def cors_origin(config: ApiConfig, origin: str | None) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or ``None`` (no CORS)."""
    if origin is None or not config.cors_origins:
        return None
    if "*" in config.cors_origins:
        return "*"
    return origin if origin in config.cors_origins else None
