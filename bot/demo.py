"""``neuralbot demo``: the bot over real BTC/USDT hourly data in accelerated time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot.app import run_backtest
from bot.config import Settings, StrategyConfig, load_settings

REPO = Path(__file__).resolve().parent.parent


def demo_settings(config: Path | None) -> Settings:
    settings = load_settings(config or REPO / "config.example.toml")
    store = settings.store.model_copy(update={"path": Path("var/demo.sqlite")})
    return settings.model_copy(update={"store": store})


async def run_demo(config: Path | None = None) -> int:
    from bot.cli import print_summary

    settings = demo_settings(config)
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
    return 0


def main(config: Path | None = None) -> int:
    return asyncio.run(run_demo(config))
