"""``neuralbot demo``: the bot over real BTC/USDT hourly data in accelerated time.

It trains the models of the configured neural strategy (``[train]`` span, quick defaults) unless the
registry already holds them, backtests the configured strategies strictly after that span
(``[backtest] start``; the in-sample guard refuses an overlap) beside buy-and-hold, and runs the live
paper session (daemon, loopback exchange) with the same strategies.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import bot
from bot.app.demo_live import LiveSession, live_paper_session
from bot.cli.common import print_summary
from bot.config.load import load_settings
from bot.config.settings import Settings, StrategyConfig, date_to_ms, train_config
from bot.kernel.compose import run_backtest

REPO = Path(bot.__file__).resolve().parent.parent  # the checkout, wherever this module sits
LIVE_STORE = Path("var/demo-live.sqlite")
LIVE_CANDLES = 720  # 30 days of hourly bars
LIVE_MAX_S = 60.0
LIVE_BAR_MS = 40.0  # real ms per simulated hour: 90,000x


def demo_settings(config: Path | None) -> Settings:
    settings = load_settings(config or REPO / "config.example.toml")
    store = settings.store.model_copy(update={"path": Path("var/demo.sqlite")})
    return settings.model_copy(update={"store": store})


def train_demo_models(settings: Settings) -> None:
    """Train the ``[[models]]`` the enabled neural strategies use, unless the registry already holds
    them with the same spec and training span (``[train]``); the backtest then starts after it."""
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from strategies.features.compute import get_spec
    from strategies.models.registry import model_dir, read_meta, save_model
    from strategies.training.pipeline import iter_train

    cfg = train_config(settings)
    wanted = {str(m) for c in settings.strategies if c.enabled and c.kind == "neural"
              for m in c.params.get("models") or ()}

    end_ms = date_to_ms(date.fromisoformat(cfg.end)) if cfg.end else None

    def current(spec: Any) -> bool:
        d = model_dir(cfg.models_dir, cfg.symbol, cfg.timeframe, spec.name)
        if not (Path(d) / "meta.json").exists():
            return False
        meta = read_meta(d)
        last = (meta.get("data_range") or {}).get("last_ts", 2**62)
        return bool(meta.get("spec") == spec.model_dump(mode="json") and (end_ms is None or last < end_ms))

    todo = [m for m in cfg.models if m.name in wanted and not current(m)]
    if not todo:
        return
    started = time.perf_counter()
    print(f"training {len(todo)} model(s) ({', '.join(m.name for m in todo)}) on {cfg.symbol} {cfg.timeframe} "
          f"[{cfg.start} .. {cfg.end}) into {cfg.models_dir}")
    for res in iter_train(cfg.model_copy(update={"models": tuple(todo)})):
        spec = res.model.spec
        save_model(res.model, model_dir(cfg.models_dir, cfg.symbol, cfg.timeframe, spec.name),
                   get_spec(spec.features), data_range=res.data_range, metrics=res.metrics,
                   fit_report=res.report)
        test = res.metrics["test"]
        print(f"  {spec.name}: {spec.target}@{spec.horizon}, test accuracy {test.get('accuracy', float('nan')):.3f}"
              f" over {int(test['n'])} windows ({res.seconds:.1f} s)")
    print(f"({time.perf_counter() - started:.1f} s of training)\n")


async def run_demo(config: Path | None = None) -> int:
    settings = demo_settings(config)
    demo_started = time.perf_counter()
    train_demo_models(settings)
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
    import asyncio  # deferred: the CLI parser starts without asyncio

    return asyncio.run(run_demo(config))
