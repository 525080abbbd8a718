"""What the risk layer remembers across a restart, as the store persists it (a plain record, so
the ports in :mod:`bot.core.ports` can name it without importing ``risk``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BreakerMemory:
    """What the breakers must remember across a restart (persisted by the store)."""

    day: int | None
    day_start_equity: float
    peak_equity: float
    reducing_day: int | None = None
