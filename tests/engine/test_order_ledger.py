"""The order ledger alone: decisions, orders in flight, pending legs, reservations, restore."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.events import OrderIntent, Side
from bot.engine.ledger import MINUTE_MS, OrderLedger
from bot.engine.reservations import Reservation

SYM = "BTC/USDT"


def entry(sig: str = "s:1", amount: float = 1.0) -> OrderIntent:
    return OrderIntent(f"{sig}:entry", sig, SYM, Side.BUY, amount, price=100.0, stop_price=94.0, leg="entry")


def exit_(origin: str = "x") -> OrderIntent:
    return OrderIntent(f"{origin}:{SYM}:exit", origin, SYM, Side.SELL, 1.0, reduce_only=True, leg="exit")


def test_an_approved_entry_holds_its_room_until_its_fills_take_it() -> None:
    ledger = OrderLedger()
    intent = entry()
    ledger.begin_entry(SYM)
    ledger.judged(intent.intent_id)
    ledger.approved_entry(intent, Reservation(SYM, heat=6.0, cost=100.0, amount=1.0), now_ms=0)
    ledger.sent(intent)
    ledger.submitted("o-1", intent.intent_id)
    assert ledger.reserved_symbols() == {SYM} and ledger.reserved_cost() == 100.0
    ledger.filled("o-1", 0.25)  # a quarter filled: a quarter of the room is now the position's
    assert ledger.reserved_cost() == 75.0 and ledger.reserved_heat() == 4.5
    ledger.filled("o-1", 0.75)
    assert not ledger.reservations() and ledger.entry_pending(SYM)  # the fill, not the close, ends it
    assert ledger.closed(intent.intent_id, SYM) is False  # no exit was pending
    assert not ledger.entry_pending(SYM) and not ledger.in_flight()
    assert intent.intent_id in ledger.decided and "s:1" in ledger.entered_signals


def test_closing_an_exit_says_the_symbols_protection_must_follow() -> None:
    ledger = OrderLedger()
    intent = exit_()
    ledger.begin_exit(SYM)
    ledger.sent(intent)
    assert ledger.closed(intent.intent_id, SYM) is True and not ledger.exit_pending(SYM)
    assert ledger.closed(intent.intent_id, SYM) is False  # already released


def test_restore_rebuilds_what_a_restart_must_remember() -> None:
    live_entry, live_exit = entry("s:2"), exit_("y")
    ledger = OrderLedger()
    ledger.restore(decided={"s:1:entry"}, entered_signals={"s:1"},
                   open_intents=[("o-2", live_entry), ("o-3", live_exit)])
    assert ledger.decided == {"s:1:entry"} and ledger.entered_signals == {"s:1"}
    assert ledger.entry_pending(SYM) and ledger.exit_pending(SYM)  # no second entry, no second exit
    assert set(ledger.in_flight()) == {live_entry.intent_id, live_exit.intent_id}
    assert ledger.closed(live_entry.intent_id, SYM) is False  # the order ends as if never restarted
    assert not ledger.entry_pending(SYM) and ledger.exit_pending(SYM)


def test_entries_are_counted_over_a_rolling_minute() -> None:
    ledger = OrderLedger()
    for i, ts in enumerate((0, 10_000, 50_000)):
        ledger.approved_entry(entry(f"s:{i}"), Reservation(SYM, 0.0, 0.0, 1.0), ts)
    assert ledger.entries_last_minute(50_000) == 3
    assert ledger.entries_last_minute(MINUTE_MS + 10_000) == 1  # the first two left the window


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=8))
def test_fills_never_leave_a_negative_reservation(fills: list[float]) -> None:
    ledger = OrderLedger()
    intent = entry(amount=3.0)
    ledger.approved_entry(intent, Reservation(SYM, 30.0, 300.0, 3.0), 0)
    ledger.submitted("o", intent.intent_id)
    for amount in fills:
        ledger.filled("o", amount)
    left = ledger.reservations().get(intent.intent_id)
    filled = sum(fills)
    if filled >= 3.0 - 1e-12:
        assert left is None
    else:
        assert left is not None and 0.0 <= left.cost <= 300.0 and left.amount >= 0.0
        assert abs(left.cost - 300.0 * (3.0 - filled) / 3.0) < 1e-6
