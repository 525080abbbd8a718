"""The failed-login throttle, as a property: an address is locked out exactly when it has had
``max_failures`` failures within ``window_s`` (since its last lock-out), and for ``lockout_s``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.api.auth import LoginThrottle

MAX, WINDOW, LOCKOUT = 3, 10.0, 30.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 20.0), st.sampled_from(["fail", "ok", "ask"])), max_size=40))
def test_lockout_follows_the_failures_in_the_window(events: list[tuple[float, str]]) -> None:
    now = [0.0]
    throttle = LoginThrottle(MAX, WINDOW, LOCKOUT, monotonic=lambda: now[0])
    failures: list[float] = []  # the model: failures since the last lock-out or success
    locked_until = -1.0
    for step, what in events:
        now[0] += step
        t = now[0]
        locked = t < locked_until
        assert (throttle.locked_for("a") > 0) == locked
        assert throttle.locked_for("b") == 0  # another address is never affected
        if locked:
            continue  # the server answers 429 before looking at the token
        if what == "fail":
            throttle.failed("a")
            failures = [f for f in failures + [t] if f >= t - WINDOW]
            if len(failures) >= MAX:
                locked_until, failures = t + LOCKOUT, []
        elif what == "ok":
            throttle.succeeded("a")
            failures = []
