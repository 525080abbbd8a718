"""``neuralbot demo``: the bot over real BTC/USDT hourly data in accelerated time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.app import run_backtest
from bot.config import Settings, StrategyConfig, load_settings
from bot.demo_live import LiveSession, live_paper_session

REPO = Path(__file__).resolve().parent.parent
LIVE_STORE = Path("var/demo-live.sqlite")
LIVE_CANDLES = 720  # 30 days of hourly bars
LIVE_MAX_S = 60.0
LIVE_BAR_MS = 40.0  # real ms per simulated hour: 90,000x


def demo_settings(config: Path | None) -> Settings:
    settings = load_settings(config or REPO / "config.example.toml")
    store = settings.store.model_copy(update={"path": Path("var/demo.sqlite")})
    return settings.model_copy(update={"store": store})


async def run_demo(config: Path | None = None) -> int:
    from bot.cli import print_summary

    settings = demo_settings(config)
    demo_started = time.perf_counter()
    # The passive benchmark: all in at the first bar, no take-profit, a stop it never reaches.
    benchmark = settings.model_copy(
        update={
            "strategies": [StrategyConfig(name="buy_and_hold", kind="buy_and_hold", params={"size_pct": 99.0})],
            "risk": settings.risk.model_copy(
                update={"max_position_pct": 100.0, "max_symbol_exposure_pct": 100.0,
                        "max_heat_pct": 100.0, "stop_loss_pct": 99.9, "take_profit_pct": None,
                        "trailing_stop_pct": None, "daily_loss_limit_pct": None,
                        "max_drawdown_pct": None}
            ),
        }
    )
    runs = [("configured strategies", settings), ("buy-and-hold benchmark", benchmark)]
    for title, cfg in runs:
        started = time.perf_counter()
        result = await run_backtest(cfg)
        print_summary(f"{title}: {', '.join(cfg.backtest.symbols)} {cfg.backtest.timeframe}", result.summary)
        print(f"({time.perf_counter() - started:.1f} s wall, {result.summary['candles'] / (time.perf_counter() - started):,.0f} candles/s)\n")
    await live_part(settings)
    print(f"demo finished in {time.perf_counter() - demo_started:.1f} s")
    return 0


async def live_part(settings: Settings, candles: int = LIVE_CANDLES, max_s: float = LIVE_MAX_S,
                    bar_ms: float = LIVE_BAR_MS, store: Path = LIVE_STORE) -> LiveSession:
    """The daemon (paper, exchange feed, real ccxt.pro client) against the loopback exchange."""
    from bot.cli import print_summary

    print(f"the bot over real BTC/USDT hourly data in accelerated time: the loopback exchange replays the\n"
          f"candles at one bar every {bar_ms:.0f} ms ({3_600_000 / bar_ms:,.0f}x); the daemon trades them in paper"
          f" mode through\nthe real ccxt.pro client (websocket klines, REST backfill, paper order book)\n")
    session = await live_paper_session(settings, store, candles=candles, max_s=max_s, bar_ms=bar_ms)
    s = session.summary
    print_summary("live paper session (daemon, exchange feed)", s)
    print(f"({session.wall_s:.1f} s wall incl. start-up; candles {s['candles']}, signals {s['signals']}, "
          f"orders {s['orders']}, fills {s['fills']}, equity {s['initial_equity']:,.2f} -> "
          f"{s['final_equity']:,.2f}; stored in {session.store})\n")
    return session


def main(config: Path | None = None) -> int:
    return asyncio.run(run_demo(config))
