"""The SMA(20/50) cross of ``neuralbot backtest`` run on nautilus_trader, as one whole process.

    NAUTILUS_PYTHON bench/peers/nautilus_sma.py CSV_GZ

Run by ``bench/bench_peers.py`` with an interpreter that has ``nautilus_trader`` installed (it
is not a dependency of this project). Same data and rules as our MA backtest: BTC/USDT 1h,
first row of each open time kept (the file's twins are rejected by our engine), long while
SMA(20) > SMA(50) else flat, 10% of equity per entry at market, 0.1% taker fee, 10,000 USDT.
Prints one line: bars, orders, final equity.
"""

from __future__ import annotations

import csv
import gzip
import sys

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.indicators import SimpleMovingAverage
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

HOUR_NS = 3_600_000_000_000


class SmaCrossConfig(StrategyConfig, frozen=True):
    bar_type: BarType
    fast: int = 20
    slow: int = 50
    size_pct: float = 10.0


class SmaCross(Strategy):
    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self.fast = SimpleMovingAverage(config.fast)
        self.slow = SimpleMovingAverage(config.slow)
        self.instrument = None

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.bar_type.instrument_id)
        self.register_indicator_for_bars(self.config.bar_type, self.fast)
        self.register_indicator_for_bars(self.config.bar_type, self.slow)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if not self.slow.initialized:
            return
        iid = self.instrument.id
        flat = self.portfolio.is_flat(iid)
        if self.fast.value > self.slow.value and flat:
            equity = float(self.portfolio.account(iid.venue).balance_total(USDT).as_double())
            amount = equity * self.config.size_pct / 100.0 / float(bar.close)
            qty = self.instrument.make_qty(amount)
            if qty > 0:
                self.submit_order(self.order_factory.market(iid, OrderSide.BUY, qty))
        elif self.fast.value <= self.slow.value and not flat:
            self.close_all_positions(iid)


def bars(path: str, bar_type: BarType, instrument) -> list[Bar]:
    out, last = [], None
    with gzip.open(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            ts = int(row["timestamp"])
            if last is not None and ts <= last:
                continue  # a twin or an out-of-order row: our engine rejects it too
            last = ts
            closed = ts * 1_000_000 + HOUR_NS
            out.append(Bar(bar_type, instrument.make_price(float(row["open"])),
                           instrument.make_price(float(row["high"])), instrument.make_price(float(row["low"])),
                           instrument.make_price(float(row["close"])), instrument.make_qty(float(row["volume"])),
                           closed, closed))
    return out


def main(path: str) -> None:
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    venue = Venue("BINANCE")
    engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH, base_currency=None,
                     starting_balances=[Money(10_000, USDT)])
    instrument = TestInstrumentProvider.btcusdt_binance()
    engine.add_instrument(instrument)
    bar_type = BarType.from_str(f"{instrument.id}-1-HOUR-LAST-EXTERNAL")
    data = bars(path, bar_type, instrument)
    engine.add_data(data)
    engine.add_strategy(SmaCross(SmaCrossConfig(bar_type=bar_type)))
    engine.run()
    orders = len(engine.cache.orders())
    equity = engine.portfolio.account(venue).balance_total(USDT)
    print(f"nautilus_trader: {len(data)} bars, {orders} orders, final balance {equity}")
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
