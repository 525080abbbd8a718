"""Start-up reconciliation counts the dust the bot's own round trips left on the exchange.

A sell that leaves less than the exchange's lot size writes the remainder off as dust: the
position is closed, the coins stay on the exchange. After a restart the stored fills still say
how much of that the bot's own trades explain; only a balance they do not explain is a mismatch.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.execution.reconcile import ReconcileReport, compare_balances
from risk.market import MarketRules
from risk.portfolio import Portfolio, Position

SYM, PRICE = "BTC/USDT", 30_000.0
RULES = {SYM: MarketRules(SYM, amount_step=0.0001, min_notional=5.0)}  # dust below max(step, 5/price)
MARKETS = {SYM: {"base": "BTC"}}


def fills(round_trips: int, left: float, held: float) -> list[dict[str, Any]]:
    """``round_trips`` buys of 0.1 + ``left`` each sold back as 0.1 (``left`` written off), then a
    buy of ``held`` still open."""
    rows = []
    for i in range(round_trips):
        rows.append({"symbol": SYM, "side": "buy", "amount": 0.1 + left, "price": PRICE, "fee": 3.0, "ts": 2 * i})
        rows.append({"symbol": SYM, "side": "sell", "amount": 0.1, "price": PRICE, "fee": 3.0, "ts": 2 * i + 1})
    rows.append({"symbol": SYM, "side": "buy", "amount": held, "price": PRICE, "fee": 3.0, "ts": 2 * round_trips})
    return rows


def reconcile(exchange_btc: float, rows: list[dict[str, Any]], held: float = 0.5) -> tuple[ReconcileReport, Portfolio]:
    portfolio = Portfolio(cash=1_000.0)
    portfolio.restore(Position(SYM, held, PRICE))
    portfolio.mark(SYM, PRICE)
    report = ReconcileReport()
    compare_balances(portfolio, {"total": {"BTC": exchange_btc}}, RULES, MARKETS, report, fills=rows)
    return report, portfolio


def test_the_dust_of_many_round_trips_is_the_bots_own_not_a_mismatch() -> None:
    # ten round trips each left 0.00009 BTC: 0.0009 in all, far above one lot's tolerance (0.000167)
    report, portfolio = reconcile(0.5 + 10 * 0.00009, fills(10, 0.00009, 0.5))
    assert report.mismatches == []
    assert portfolio.position(SYM).amount == 0.5  # the dust is accounted for, never a position


def test_coins_the_fills_do_not_explain_are_still_a_mismatch() -> None:
    rows = fills(10, 0.00009, 0.5)
    more, _ = reconcile(0.5 + 10 * 0.00009 + 0.01, rows)  # someone else's 0.01 BTC
    less, portfolio = reconcile(0.3, rows)  # 0.2 BTC gone from the account
    assert len(more.mismatches) == 1 and len(less.mismatches) == 1
    assert portfolio.position(SYM).amount == 0.3  # ours went missing: hold only what is there


@settings(max_examples=80, deadline=None)
@given(trips=st.integers(0, 40), left=st.floats(0.0, 0.00016), extra=st.floats(-0.01, 0.01))
def test_only_a_balance_the_fills_do_not_explain_is_a_mismatch(trips: int, left: float, extra: float) -> None:
    """From the position (less one lot) to the position plus the fills' dust (plus one lot):
    never a mismatch; outside that range: always one."""
    rows = fills(trips, left, 0.5)
    exchange = 0.5 + trips * left + extra
    report, _ = reconcile(exchange, rows)
    tolerance = RULES[SYM].dust(PRICE)
    low, high = 0.5 - tolerance, 0.5 + trips * left + tolerance
    if low * 1.0000001 < exchange < high * 0.9999999:
        assert report.mismatches == []
    elif exchange < low * 0.9999999 or exchange > high * 1.0000001:
        assert len(report.mismatches) == 1
