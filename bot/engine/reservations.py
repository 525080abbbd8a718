"""What approved, not yet filled entries commit: heat, cash and a position slot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Reservation:
    """What an approved, not yet filled entry commits: its heat, cash and a position slot."""

    symbol: str
    heat: float
    cost: float
    amount: float

    def take(self, filled: float) -> None:
        share = 1.0 if self.amount <= 0 else min(1.0, filled / self.amount)
        self.heat *= 1.0 - share
        self.cost *= 1.0 - share
        self.amount = max(0.0, self.amount - filled)
