"""Protection of open positions: stops, targets and trailing stops, and the exchange-side stop
that mirrors them where the executor declares one (``ExecutionPort.protection``).

Like a position executor controlling its barriers, it judges each bar (its whole range,
intrabar) and each traded or quoted price against the position's stop and target and
returns an ``ExitRequest`` when one is crossed; the order flow decides whether to send it.
Where nothing is crossed, a trailing stop ratchets up with the high (never down).

The engine's own stop is always judged; an exchange-side stop (``ExchangeConfig.
exchange_stops``) is a second line that also works while the bot is down. It follows the
position: placed after an entry fill, replaced when the trailing stop ratchets, and
cancelled before any other exit leg is sent (its balance is locked; an exit must never sell
the same coins twice). Which symbols' exchange stops may be stale is tracked here
(``touch``); the order flow brings them in line (``mirror``) and applies what comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.events import Candle, PositionChanged
from bot.core.ports import ProtectionPort
from risk.stops import exit_on_bar, exit_on_price, trailed_stop

if TYPE_CHECKING:
    from bot.core.ports import Facts
    from risk.portfolio import Portfolio


@dataclass(frozen=True, slots=True)
class ExitRequest:
    """Close ``amount`` of ``symbol``: leg ``stop`` / ``take_profit`` at reference ``price``."""

    symbol: str
    amount: float
    leg: str
    price: float
    ts: int
    origin: str  # the decision's identity: deterministic, one exit per trigger


class Protection:
    def __init__(self, portfolio: Portfolio, port: ProtectionPort | None) -> None:
        self.portfolio = portfolio
        self.port = port  # the executor's exchange-side stops, if it has them
        self._stale: set[str] = set()  # symbols whose exchange-side stop may be stale
        self._mirroring = False

    # -- barriers -----------------------------------------------------------------------------

    def judge_bar(self, candle: Candle) -> ExitRequest | None:
        """The exit a closed bar's range demands of ``candle.symbol``'s position, if any."""
        pos = self.portfolio.position(candle.symbol)
        hit = exit_on_bar(pos, candle.open, candle.high, candle.low)
        if hit is None:
            return None
        return ExitRequest(candle.symbol, pos.amount, hit[0], hit[1], candle.ts, f"{candle.ts}")

    def judge_price(self, symbol: str, price: float, ts: int) -> ExitRequest | None:
        """The exit a traded or quoted ``price`` demands of ``symbol``'s position, if any."""
        pos = self.portfolio.position(symbol)
        hit = exit_on_price(pos, price)
        if hit is None:
            return None
        return ExitRequest(symbol, pos.amount, hit[0], hit[1], ts, f"{ts}")

    def trail(self, symbol: str, high: float, ts: int) -> PositionChanged | None:
        """Ratchet the trailing stop up with ``high``; the position's change if it moved."""
        new_stop = trailed_stop(self.portfolio.position(symbol), high)
        if new_stop is None or not self.portfolio.raise_stop(symbol, new_stop):
            return None
        self._stale.add(symbol)
        return self.portfolio.position_changed(symbol, ts)

    # -- the exchange-side mirror ---------------------------------------------------------------

    def touch(self, symbol: str) -> None:
        """``symbol``'s position changed: its exchange-side stop may need to follow."""
        self._stale.add(symbol)

    @property
    def stale(self) -> bool:
        return bool(self._stale)

    def rearm(self) -> None:
        """Start-up: every open position, and every symbol with a live exchange stop, is looked at."""
        if self.port is None:
            return
        self._stale.update(p.symbol for p in self.portfolio.open_positions())
        self._stale.update(self.port.protected_symbols())

    @contextmanager
    def mirroring(self) -> Iterator[bool]:
        """Hold the mirror while stops are brought in line (the facts they produce must not
        start a second round); yields whether this caller holds it (``False``: nothing to do)."""
        if self.port is None:
            self._stale.clear()
            yield False
            return
        if self._mirroring:
            yield False
            return
        self._mirroring = True
        try:
            yield True
        finally:
            self._mirroring = False

    def next_stale(self) -> str | None:
        return self._stale.pop() if self._stale else None

    async def mirror(self, symbol: str) -> Facts:
        """Make the exchange hold the stop ``symbol``'s position has (or none); its facts."""
        assert self.port is not None
        pos = self.portfolio.position(symbol)
        if pos.is_open and pos.stop_price is not None:
            return await self.port.protect(symbol, pos.amount, pos.stop_price, pos.opened_ts)
        return await self.port.unprotect(symbol)

    async def release(self, symbol: str) -> Facts:
        """Cancel ``symbol``'s exchange stop before another exit; its facts (fills if it had
        triggered). The caller applies them while the mirror is ``held``, then ``settled``."""
        assert self.port is not None
        return await self.port.unprotect(symbol)

    def settled(self, symbol: str) -> None:
        """``symbol``'s exchange stop was released for an exit: nothing to bring in line."""
        self._stale.discard(symbol)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the mirror (a stop's own facts being applied must not re-arm it)."""
        self._mirroring = True
        try:
            yield
        finally:
            self._mirroring = False
