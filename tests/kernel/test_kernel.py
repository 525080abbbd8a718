"""The kernel builds every mode from settings and refuses a combination it cannot build:
a ConfigError (one line: source, key, problem and fix) and, from the command line, exit 2."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.clock import LiveClock, SimClock
from bot.config.settings import ConfigError, Settings
from bot.config.load import load_settings
from bot.execution.simulated import SimulatedExecutor
from bot.feeds.live import LiveFeed
from bot.feeds.live_settings import LiveFeedSettings
from bot.feeds.replay import ReplayFeed
from bot.kernel.kernel import Kernel
from bot.store.store import Store
from tests.paths import REPO

MA = '[[strategies]]\nname = "ma"\nkind = "ma_crossover"\nsymbols = ["BTC/USDT"]\ntimeframe = "1h"\n'


def refused(settings: Settings, mode: str | None = None, **kw: object) -> str:
    with pytest.raises(ConfigError) as err:
        Kernel(settings, mode, **kw)  # type: ignore[arg-type]
    text = err.value.render()
    assert len(text.splitlines()) == len(err.value.problems)  # one line per problem
    return text


@pytest.mark.parametrize(("settings", "mode", "key", "fix"), [
    (Settings(mode="live", feed={"source": "exchange"}), None, "i_understand_live_trading",
     "set i_understand_live_trading = true"),
    (Settings(mode="sandbox"), None, "feed.source", 'set feed.source = "exchange"'),
    (Settings(mode="live", i_understand_live_trading=True), None, "feed.source", 'set feed.source = "exchange"'),
    (Settings(mode="sandbox", feed={"source": "exchange"}, exchange={"name": "kraken"}), None,
     "exchange.http_url", "set exchange.http_url"),
    (Settings(mode="paper", feed={"source": "exchange"}, exchange={"name": "binanse"}), None,
     "exchange.name", "did you mean 'binance'?"),
    (Settings(mode="sandbox", feed={"source": "exchange"}, exchange={"ws_url": "ws://127.0.0.1:9"}), None,
     "exchange.ws_url", "set exchange.http_url"),
    (Settings(mode="paper"), "sandbox", "mode", 'set mode = "sandbox"'),
    (Settings(), "backtset", "mode", "did you mean 'backtest'?"),
])
def test_an_impossible_combination_is_a_config_error_naming_key_and_fix(
        settings: Settings, mode: str | None, key: str, fix: str) -> None:
    text = refused(settings, mode, daemon=True, source="bot.toml")
    assert text.startswith(f"bot.toml: {key}: ") and fix in text, text


def test_a_setting_no_daemon_could_run_never_keeps_the_operator_from_halting() -> None:
    """The operator's halt only talks to the exchange: the feed a daemon would need is not asked for."""
    settings = Settings(mode="sandbox")  # feed.source = "replay": no daemon runs on it
    assert Kernel(settings).mode == "sandbox"
    assert "feed.source" in refused(settings, daemon=True)


def test_a_backtest_of_a_live_feed_is_refused() -> None:
    live = LiveFeed(object(), LiveFeedSettings(symbols=("BTC/USDT",), timeframes=("1h",)), LiveClock())
    for mode in ("backtest", "evaluation"):
        text = refused(Settings(), mode, feed=live)
        assert "feed: " in text and "LiveFeed streams the exchange live" in text and "ReplayFeed" in text
    Kernel(Settings(), "backtest", feed=ReplayFeed([]))  # a finite replay is what it needs


def test_every_problem_is_reported_at_once() -> None:
    text = refused(Settings(mode="live", exchange={"ws_url": "ws://127.0.0.1:9"}), daemon=True)
    assert [line.split(": ")[1] for line in text.splitlines()] == [
        "i_understand_live_trading", "exchange.ws_url", "feed.source"]


@pytest.mark.parametrize("settings", [
    Settings(), Settings(feed={"source": "exchange"}),
    Settings(mode="sandbox", feed={"source": "exchange"}),  # binance has a test network
    Settings(mode="sandbox", feed={"source": "exchange"},
             exchange={"name": "kraken", "http_url": "http://127.0.0.1:9"}),  # a test server of its own
    Settings(mode="live", i_understand_live_trading=True, feed={"source": "exchange"}),
])
def test_a_possible_combination_builds(settings: Settings) -> None:
    assert Kernel(settings, daemon=settings.feed.source == "exchange").mode == settings.mode


def test_backtest_and_evaluation_build_the_simulated_engine(tmp_path: Path) -> None:
    settings = Settings(strategies=[{"name": "ma", "kind": "ma_crossover"}], backtest={"initial_equity": 5_000.0})

    async def go() -> None:
        async with await Store.open(tmp_path / "k.sqlite", "k") as store:
            for mode in ("backtest", "evaluation"):
                kernel = Kernel(settings, mode)  # type: ignore[arg-type]
                engine = kernel.simulated_engine(kernel.strategies(), store, SimClock())
                assert isinstance(engine.executor, SimulatedExecutor)
                assert engine.portfolio.cash == 5_000.0 and [s.name for s in engine.strategies] == ["ma"]

    asyncio.run(go())


def test_the_cli_exits_2_with_one_line_for_an_impossible_daemon(write_config: Callable[..., Path]) -> None:
    cfg = write_config('mode = "sandbox"\n' + MA)
    env = {"NEURALBOT_API_KEY": "k", "NEURALBOT_API_SECRET": "s", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(cfg)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"{cfg}: feed.source: ") and 'set feed.source = "exchange"' in line


def test_a_reload_into_an_impossible_combination_is_rejected(write_config: Callable[..., Path]) -> None:
    from bot.app.daemon import Daemon

    path = write_config(MA)
    daemon = Daemon(load_settings(path), "t", config_path=path)
    assert write_config('mode = "sandbox"\n' + MA) == path  # the file the daemon reloads
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEURALBOT_API_KEY", "k")
        mp.setenv("NEURALBOT_API_SECRET", "s")
        assert asyncio.run(daemon.reload()) is False
    assert "feed.source" in daemon.last_reload["error"] and daemon.settings.mode == "paper"


@pytest.mark.parametrize(("mode", "executor"),
                         [("paper", "paper_book"), ("sandbox", "exchange"), ("live", "exchange")])
def test_the_kernel_builds_each_daemon_on_the_loopback_exchange(data_dir: Path, tmp_path: Path, mode: str,
                                                               executor: str) -> None:
    """The daemon of each exchange-feed mode, built from settings alone: its executor, the ccxt.pro
    feed, and (sandbox, live) the exchange reconciled before anything trades."""
    from bot.sim import SimExchange, SimSettings
    from bot.execution.exchange import ExchangeExecutor
    from bot.execution.paper_book import PaperBookExecutor

    sim_settings = SimSettings(data_dir=data_dir, symbols=("BTC/USDT",), timeframes=("1h",), book_replay=False,
                               speed=1.0, start_ms=1_600_000_000_000)

    async def go() -> None:
        async with SimExchange(sim_settings) as sim:
            settings = Settings(mode=mode, i_understand_live_trading=mode == "live", api_key="sim-key",
                                api_secret="sim-secret", data={"dir": data_dir}, feed={"source": "exchange"},
                                exchange={"http_url": sim.http_url, "ws_url": sim.ws_url},
                                strategies=[{"name": "ma", "kind": "ma_crossover", "symbols": ["BTC/USDT"],
                                             "timeframe": "1h"}])
            kernel = Kernel(settings, daemon=True)
            async with await Store.open(tmp_path / f"{mode}.sqlite", mode) as store:
                system = await kernel.daemon(store, kernel.strategies())
                try:
                    assert system.executor == executor and isinstance(system.feed, LiveFeed)
                    kind = ExchangeExecutor if executor == "exchange" else PaperBookExecutor
                    assert isinstance(system.engine.executor, kind)
                    assert isinstance(system.clock, LiveClock if executor == "exchange" else SimClock)
                    if executor == "exchange":
                        assert system.reconcile == {"recovered_fills": 0, "closed_orders": 0, "mismatches": []}
                        assert system.engine.portfolio.cash > 0  # the account's balance, not a paper one
                    assert system.resume["BTC/USDT@1h"] is not None  # warmed over REST from the exchange
                finally:
                    await system.feed.close()
                    if system.rest_client is not None:
                        await system.rest_client.close()

    asyncio.run(go())
