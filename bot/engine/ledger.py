"""The order ledger: what the Engine has decided and what is still on its way.

* decisions: every intent id the risk gate judged (never judged twice, across restarts) and
  every signal that entered (never entered twice);
* intents in flight, by intent id, and each order's intent (order id -> intent id);
* pending entries and exits per symbol (one of each at a time);
* reservations: what an approved, unfilled entry commits (heat, cash, a position slot),
  held until it fills or closes, so the gate never double-counts room;
* the times of recent entries (the gate's orders-per-minute limit).

It owns this state alone; the order flow asks and tells it. ``restore`` rebuilds it after a
restart from what the store and the executor remember.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from bot.core.events import OrderIntent
from bot.engine.reservations import Reservation

MINUTE_MS = 60_000


class OrderLedger:
    def __init__(self) -> None:
        self.decided: set[str] = set()  # intent ids the gate judged
        self.entered_signals: set[str] = set()
        self._intents: dict[str, OrderIntent] = {}  # in flight, by intent id
        self._order_intent: dict[str, str] = {}  # order id -> intent id
        self._pending_entries: set[str] = set()
        self._pending_exits: set[str] = set()
        self._reserved: dict[str, Reservation] = {}  # intent id -> commitment of a live entry
        self._entry_times: deque[int] = deque()

    def restore(self, decided: Iterable[str] = (), entered_signals: Iterable[str] = (),
                open_intents: Iterable[tuple[str, OrderIntent]] = ()) -> None:
        """Resume after a restart: decisions taken, and the orders still live (order id, intent)."""
        self.decided.update(decided)
        self.entered_signals.update(entered_signals)
        for order_id, intent in open_intents:
            self.sent(intent)
            self.submitted(order_id, intent.intent_id)
            (self._pending_exits if intent.reduce_only else self._pending_entries).add(intent.symbol)

    # -- pending legs ------------------------------------------------------------------------

    def entry_pending(self, symbol: str) -> bool:
        return symbol in self._pending_entries

    def exit_pending(self, symbol: str) -> bool:
        return symbol in self._pending_exits

    def begin_entry(self, symbol: str) -> None:
        self._pending_entries.add(symbol)

    def begin_exit(self, symbol: str) -> None:
        self._pending_exits.add(symbol)

    def end_entry(self, symbol: str) -> None:
        self._pending_entries.discard(symbol)

    def end_exit(self, symbol: str) -> None:
        self._pending_exits.discard(symbol)

    # -- decisions and orders ----------------------------------------------------------------

    def judged(self, intent_id: str) -> None:
        self.decided.add(intent_id)

    def approved_entry(self, intent: OrderIntent, reservation: Reservation, now_ms: int) -> None:
        """An entry passed the gate: its signal has entered, its room is held until it fills."""
        self.entered_signals.add(intent.signal_id)
        self._entry_times.append(now_ms)
        self._reserved[intent.intent_id] = reservation

    def entries_last_minute(self, now_ms: int) -> int:
        while self._entry_times and self._entry_times[0] <= now_ms - MINUTE_MS:
            self._entry_times.popleft()
        return len(self._entry_times)

    def sent(self, intent: OrderIntent) -> None:
        self._intents[intent.intent_id] = intent

    def submitted(self, order_id: str, intent_id: str) -> None:
        self._order_intent[order_id] = intent_id

    def filled(self, order_id: str, amount: float) -> None:
        """A fill of ``order_id`` takes its share of the entry's reservation."""
        intent_id = self._order_intent.get(order_id, order_id)
        reservation = self._reserved.get(intent_id)
        if reservation is not None:
            reservation.take(amount)
            if reservation.amount <= 1e-12:
                del self._reserved[intent_id]

    def closed(self, intent_id: str, symbol: str) -> bool:
        """An order of ``intent_id`` ended (or was denied): release what it held. Returns whether
        an exit of ``symbol`` was pending (its outcome touches the symbol's protection)."""
        self._reserved.pop(intent_id, None)
        intent = self._intents.pop(intent_id, None)
        exit_was_pending = False
        if intent is None or intent.reduce_only:
            exit_was_pending = symbol in self._pending_exits
            self._pending_exits.discard(symbol)
        if intent is None or not intent.reduce_only:
            self._pending_entries.discard(symbol)
        return exit_was_pending

    # -- what is committed -------------------------------------------------------------------

    def reservations(self) -> dict[str, Reservation]:
        """What approved, unfilled entries hold, by intent id (a copy)."""
        return dict(self._reserved)

    def reserved_symbols(self) -> set[str]:
        return {r.symbol for r in self._reserved.values()}

    def reserved_cost(self) -> float:
        return sum(r.cost for r in self._reserved.values())

    def reserved_heat(self) -> float:
        return sum(r.heat for r in self._reserved.values())

    def in_flight(self) -> dict[str, OrderIntent]:
        """Intents sent and not yet closed, by intent id (a copy)."""
        return dict(self._intents)
