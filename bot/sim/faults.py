"""Deterministic fault injection for the loopback exchange."""

from __future__ import annotations

from dataclasses import dataclass

from bot.sim.settings import FaultSettings


def every(n: int | None, count: int) -> bool:
    return n is not None and n > 0 and count % n == 0


@dataclass(slots=True)
class FaultCounters:
    """What was injected so far (tests and the CLI read these)."""

    drops: int = 0
    malformed: int = 0
    depth_skipped: int = 0
    http_429: int = 0
    http_5xx: int = 0
    order_timeouts: int = 0


class HttpFaults:
    """Decides, per REST request, whether to answer with an injected error."""

    def __init__(self, counters: FaultCounters) -> None:
        self.counters = counters
        self._requests = 0
        self._orders = 0

    def check(self, faults: FaultSettings, path: str) -> int | None:
        """HTTP status to answer instead of serving the request, or ``None``."""
        if faults.http_fault_paths and path not in faults.http_fault_paths:
            return None
        self._requests += 1
        if every(faults.http_429_every_n, self._requests):
            self.counters.http_429 += 1
            return 429
        if every(faults.http_5xx_every_n, self._requests):
            self.counters.http_5xx += 1
            return 503
        return None

    def order_times_out(self, faults: FaultSettings) -> bool:
        self._orders += 1
        if every(faults.order_timeout_every_n, self._orders):
            self.counters.order_timeouts += 1
            return True
        return False
