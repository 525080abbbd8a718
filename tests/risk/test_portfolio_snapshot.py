"""``Portfolio.snapshot`` (one pass over the positions; the order flow's risk context reads its
equity and heat) equals ``cash``, ``equity()``, ``exposure()`` and ``heat()`` to the bit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core.events import OrderFilled, Side
from risk.portfolio import Portfolio

SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")
price = st.floats(0.01, 1e6)
step = st.tuples(st.sampled_from(SYMBOLS), st.booleans(), st.floats(1e-6, 50.0), price,
                 st.one_of(st.none(), price), price)


@given(cash=st.floats(0.0, 1e9), steps=st.lists(step, max_size=30))
def test_snapshot_is_equity_exposure_and_heat(cash: float, steps: list) -> None:  # type: ignore[type-arg]
    portfolio = Portfolio(cash)
    for i, (symbol, buy, amount, fill_price, stop, mark) in enumerate(steps):
        portfolio.apply_fill(OrderFilled(f"o{i}", f"t{i}", symbol, Side.BUY if buy else Side.SELL, amount,
                                         fill_price, amount * fill_price * 0.001, i))
        portfolio.set_protection(symbol, stop, None)
        portfolio.mark(symbol, mark)
        snapshot = portfolio.snapshot(i)
        plain = (i, portfolio.cash, portfolio.equity(), portfolio.exposure(), portfolio.heat())
        assert [repr(float(x)) for x in (snapshot.ts, snapshot.cash, snapshot.equity, snapshot.exposure,
                                         snapshot.heat)] == [repr(float(x)) for x in plain]
