"""Exponential backoff with jitter (deterministic when given a seeded RNG)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5  # fraction of the delay randomised: delay * (1 +- jitter/2)
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0
    history: list[float] = field(default_factory=list)  # delays handed out (for stats/tests)

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** min(self.attempt, 60))
        self.attempt += 1
        delay = base * (1.0 + self.jitter * (self.rng.random() - 0.5))
        delay = max(0.0, min(self.max_s, delay))
        self.history.append(delay)
        return delay

    def reset(self) -> None:
        self.attempt = 0
