"""The kernel: the one place where settings become a running system, for every mode.

(cf. nautilus_trader's ``system/kernel.py``.) ``Kernel(settings, mode)`` first rejects
a combination it cannot build (:mod:`bot.kernel.checks`: a :class:`bot.config.settings.ConfigError`,
one line per problem, exit 2), then builds the parts of that mode, always the same
Engine through its one constructor:

============  ==========================  =================  ==========================================
mode          feed                        clock              executor
============  ==========================  =================  ==========================================
backtest,     recorded candles            ``SimClock``       ``SimulatedExecutor``: next candle's open
evaluation    (``ReplayFeed``)
paper         ``feed.source``: replay     ``SimClock``       replay: ``SimulatedExecutor``; exchange:
              or the ccxt.pro feed        (market time)      ``PaperBookExecutor`` (walks the books)
sandbox,      the ccxt.pro feed           ``LiveClock``      ``ExchangeExecutor``: real orders; positions
live                                                         and stops re-armed and the exchange
                                                             reconciled before anything trades
============  ==========================  =================  ==========================================

``neuralbot backtest`` / ``demo`` (``bot.kernel.compose.run_backtest``), the evaluation runs
(``bot.evaluation.backtest.run_strategy``), the daemon (:meth:`Kernel.daemon`), the
sandbox runner and the operator's exchange halt all build here, reading the settings
through :mod:`bot.kernel.settings`. A reload goes through :meth:`Kernel.reconfigure`:
what a new configuration may change in a running Engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bot.core.clock import Clock, LiveClock, SimClock
from bot.config.settings import Settings, date_to_ms
from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.engine.engine import Engine
from bot.engine.settings import DURABLE_STATE_POLL_MS, EngineSettings
from bot.core.events import timeframe_ms
from bot.core.heap import freeze_long_lived
from bot.core.ports import ExecutionPort
from bot.kernel.paper_restart import restore_paper
from bot.execution.simulated import SimulatedExecutor
from bot.core.feed_port import Feed
from bot.feeds.replay import ReplayFeed
from bot.kernel.checks import Mode, check_combination
from bot.kernel.settings import (
    Series,
    build_strategies,
    engine_settings,
    feed_series,
    live_feed_settings,
    risk_limits,
)
from bot.store.store import Store
from bot.kernel.warmup import warm_up
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from strategies.base import Strategy

if TYPE_CHECKING:
    from bot.kernel.resume import ExchangeEngine
    from bot.execution.retry import RetryPolicy

log = structlog.get_logger("bot.kernel.kernel")

# what a reload may change in the Engine's settings; the rest was decided by the kernel at
# start (durability, operator-halt polling, breaker persistence, order logging, the fee the
# exchange reported, the executor's fees) and lasts until a restart
RELOADABLE_ENGINE_SETTINGS = ("stops", "risk_per_trade_pct", "slippage_margin_bps", "atr_period")


def series_key(series: list[Series], sym: str, tf: str) -> str:
    """``BTC/USDT`` when the symbol trades on one timeframe, else ``BTC/USDT@4h``."""
    return sym if sum(1 for s, _ in series if s == sym) == 1 else f"{sym}@{tf}"


@dataclass(slots=True)
class System:
    """A daemon's running parts: the restored Engine and the Feed that drives it."""

    engine: Engine
    feed: Feed
    clock: Clock  # the engine's: wall clock on the exchange, else market time (``SimClock``)
    series: list[Series]
    executor: str  # "simulated" | "paper_book" | "exchange"
    resume: dict[str, int | None]
    rest_client: Any = None  # the exchange executor's ccxt client (closed at shutdown)
    reconcile: dict[str, Any] | None = None

    @property
    def symbols(self) -> list[str]:
        return sorted({sym for sym, _ in self.series})

    @property
    def timeframe(self) -> str:
        """The finest timeframe traded (summaries, staleness)."""
        return min((tf for _, tf in self.series), key=timeframe_ms)


@dataclass(frozen=True, slots=True)
class Reconfiguration:
    """What a reloaded configuration changes in a running Engine (``Engine.reconfigure``)."""

    limits: RiskLimits
    engine: EngineSettings


# -- the kernel -----------------------------------------------------------------------------


class Kernel:
    """Builds the parts of one ``mode`` from ``settings`` (see the module docstring).

    ``mode`` defaults to ``settings.mode`` (a daemon's, or the operator's halt); ``feed``
    is a feed the caller will run (a replay's may not be live); ``daemon``: the settings
    must also make a daemon that trades its feed (:meth:`daemon`); ``source`` names the
    configuration in error messages.
    """

    def __init__(self, settings: Settings, mode: Mode | None = None, *, feed: Feed | None = None,
                 daemon: bool = False, source: str = "") -> None:
        self.mode: str = mode or settings.mode
        check_combination(settings, self.mode, feed, source, daemon)
        self.settings = settings
        self.source = source

    # -- parts ----------------------------------------------------------------------------

    def strategies(self, symbols: list[str] | None = None, timeframe: str | None = None) -> list[Strategy]:
        return build_strategies(self.settings, symbols, timeframe)

    def engine_settings(self, durable: bool = False) -> EngineSettings:
        return engine_settings(self.settings, durable)

    def risk_limits(self) -> RiskLimits:
        return risk_limits(self.settings)

    def client(self, *, pro: bool = False) -> Any:
        """A ccxt async client: the test network in ``sandbox`` mode only.

        ``pro``: the ccxt.pro (websocket) class, without credentials (market data only).
        ``exchange.http_url`` / ``ws_url`` point it at another server (the loopback exchange).
        """
        s = self.settings
        # ccxt (pro): loaded by the modes that connect only
        from bot.execution.retry import CCXT_RATE_LIMIT

        if pro:
            import ccxt.pro as ccxt_module
        else:
            import ccxt.async_support as ccxt_module

        cls = getattr(ccxt_module, s.exchange.name)  # known: checked by ``exchange_known``
        params: dict[str, Any] = {**CCXT_RATE_LIMIT, "timeout": s.exchange.timeout_ms}
        if not pro and s.api_key is not None and s.api_secret is not None:
            params |= {"apiKey": s.api_key.get_secret_value(), "secret": s.api_secret.get_secret_value()}
        client = cls(params)
        if s.exchange.http_url:
            from bot.sim.ccxt_config import configure_ccxt  # the loopback package: aiohttp

            configure_ccxt(client, s.exchange.http_url, s.exchange.ws_url)
        elif s.mode == "sandbox":  # paper streams the real public market data
            client.set_sandbox_mode(True)
        return client

    # -- engines --------------------------------------------------------------------------

    def simulated_engine(
        self, strategies: list[Strategy], store: Any, clock: Clock, *, executor: ExecutionPort | None = None,
        initial_equity: float | None = None, engine: EngineSettings | None = None,
        limits: RiskLimits | None = None,
    ) -> Engine:
        """The Engine of a replay or of paper trading; ``engine`` and ``limits`` override what
        the settings derive; without ``executor``, simulated fills at the next candle."""
        settings = self.settings
        portfolio = Portfolio(initial_equity or settings.backtest.initial_equity)
        if executor is None:
            executor = SimulatedExecutor(
                fee_rate=settings.exchange.fee_rate,
                slippage_bps=settings.backtest.slippage_bps,
                cash=lambda: portfolio.cash,
            )
        return Engine(
            strategies=strategies,
            gate=RiskGate(limits or risk_limits(settings)),
            executor=executor,
            portfolio=portfolio,
            store=store,
            clock=clock,
            settings=engine or engine_settings(settings),
        )

    async def exchange_engine(
        self, client: Any, store: Store, clock: Clock, strategies: list[Strategy], symbols: list[str], *,
        engine: EngineSettings | None = None, limits: RiskLimits | None = None,
        retry: RetryPolicy | None = None, quote: str = "USDT", exchange_stops: bool | None = None,
    ) -> ExchangeEngine:
        """Connect, rebuild positions and stops, reconcile the exchange, re-arm exchange stops
        (``exchange_stops``, default ``exchange.exchange_stops``); nothing trades before it
        returns. ``exchange.stake``: the quote this portfolio accounts for (unset: the whole
        account is ours)."""
        # ccxt: loaded by the exchange modes only
        from bot.execution.exchange import ExchangeExecutor
        from bot.execution.reconcile import rebuild_positions
        from bot.kernel.resume import resume_exchange

        ex = self.settings.exchange
        base = engine or engine_settings(self.settings, durable=True)
        stops = ex.exchange_stops if exchange_stops is None else exchange_stops
        executor = ExchangeExecutor(client, store, clock, retry=retry, exchange_stops=stops)
        rules = await executor.start(symbols)
        maker, taker = executor.fees(symbols[0]) if symbols else (0.0, base.fee_rate)
        settings = dataclasses.replace(base, durable=True, fee_rate=max(maker, taker))
        # 1. positions and their stops, before anything else
        positions = await rebuild_positions(store, settings.stops, rules)
        built = Engine(strategies=strategies, gate=RiskGate(limits or risk_limits(self.settings)),
                       executor=executor, portfolio=Portfolio(cash=0.0), store=store, clock=clock,
                       settings=settings, markets=rules)
        return await resume_exchange(built, executor, positions, client=client, store=store, symbols=symbols,
                                     rules=rules, quote=quote, stake=ex.stake)

    async def daemon(self, store: Store, strategies: list[Strategy]) -> System:
        """Build, restore and (exchange modes) reconcile the Engine; then the Feed that drives it.
        Before the feed starts, the Engine and every strategy are warmed on the history."""
        check_combination(self.settings, self.mode, source=self.source, daemon=True)
        settings = self.settings
        series = feed_series(strategies)
        if not series:
            raise ValueError("no enabled strategy: nothing to trade")
        source, mode = settings.feed.source, self.mode
        symbols = sorted({sym for sym, _ in series})
        rest_client = None
        report: dict[str, Any] | None = None
        if mode in ("sandbox", "live"):
            clock: Clock = LiveClock()
            rest_client = self.client()
            try:
                built = await self.exchange_engine(rest_client, store, clock, strategies, symbols)
            except BaseException:
                await rest_client.close()
                raise
            engine, kind = built.engine, "exchange"
            report = {"recovered_fills": built.report.recovered_fills,
                      "closed_orders": built.report.closed_orders, "mismatches": list(built.report.mismatches)}
        else:
            # paper fills are judged in market time: the clock follows the exchange's timestamps
            clock = SimClock()
            held: list[Engine] = []  # the paper book sizes market buys to the cash the portfolio holds
            executor = self.paper_book_executor(lambda: held[0].portfolio.cash) if source == "exchange" else None
            kind = "simulated" if executor is None else "paper_book"
            # a daemon: log every order, honour an operator halt, keep the breakers across restarts
            daemon_settings = dataclasses.replace(engine_settings(settings), log_orders=True,
                                                  persist_breakers=True, state_poll_ms=DURABLE_STATE_POLL_MS)
            engine = self.simulated_engine(strategies, store, clock, executor=executor, engine=daemon_settings)
            held.append(engine)
            await restore_paper(engine, store)
        await engine.restore_breakers()
        for symbol, reason in (await store.load_pauses()).items():  # an operator's pause outlives a restart
            engine.pause(symbol, reason)
        resume = await warm_up(engine, store, settings, series, rest_client, self.client)
        freeze_long_lived()  # what start-up built leaves the collector's generations (bot.core.heap)
        feed = self.replay_feed(series, resume) if source == "replay" else self.exchange_feed(
            series, resume, LiveClock())
        log.info("daemon_resumed", cash=round(engine.portfolio.cash, 2), executor=kind,
                 resume={series_key(series, s, tf): resume[f"{s}@{tf}"] for s, tf in series},
                 positions=[p.symbol for p in engine.portfolio.open_positions()],
                 trading_state=engine.state.value)
        return System(engine, feed, clock, series, kind, resume, rest_client, report)

    def paper_book_executor(self, cash: Callable[[], float]) -> ExecutionPort:
        from bot.execution.paper_book import Fees, PaperBookExecutor  # a paper daemon on the exchange feed only

        s = self.settings
        fee = s.exchange.fee_rate
        return PaperBookExecutor(default_fees=Fees(fee, fee), latency_ms=s.exchange.paper_latency_ms,
                                 slippage_bps=s.backtest.slippage_bps, cash=cash)

    # -- feeds ----------------------------------------------------------------------------

    def replay_feed(self, series: list[Series], resume: dict[str, int | None]) -> ReplayFeed:
        """Recorded candles per series, each resuming right after its last stored candle."""
        s = self.settings
        exch, start, end = s.exchange.name, date_to_ms(s.backtest.start), date_to_ms(s.backtest.end)
        loaded = []
        for sym, tf in series:
            since, last = start, resume.get(f"{sym}@{tf}")
            if last is not None:  # everything up to the last stored candle was processed
                since = max(since or 0, last + timeframe_ms(tf))
            loaded.append(load_candles_csv(candle_file(s.data.dir, exch, sym, tf), exch, sym, tf, since, end))
        return ReplayFeed(loaded, speed=s.feed.replay_speed)

    def exchange_feed(self, series: list[Series], resume: dict[str, int | None], clock: Clock) -> Feed:
        """The ccxt.pro feed; after a restart it backfills from the oldest last-stored candle.

        ``clock`` is the local wall clock (checked against the exchange's at start).
        """
        from bot.feeds.live import LiveFeed  # ccxt.pro, aiohttp

        s = self.settings
        since = None
        stored = [(ts, tf) for (sym, tf) in series if (ts := resume.get(f"{sym}@{tf}")) is not None]
        if stored and s.daemon.backfill:
            since = min(ts + timeframe_ms(tf) for ts, tf in stored)
        lfs = live_feed_settings(s, since_ms=since)
        if not s.daemon.check_clock_skew:
            lfs = dataclasses.replace(lfs, max_clock_skew_ms=None)
        return LiveFeed(self.client(pro=True), lfs, clock)

    # -- reload ---------------------------------------------------------------------------

    def reloaded(self, running: EngineSettings) -> Reconfiguration:
        """What these (reloaded) settings change in an Engine running with ``running``: its risk
        limits and the reloadable fields of its settings (:data:`RELOADABLE_ENGINE_SETTINGS`);
        the rest lasts until a restart."""
        fresh = engine_settings(self.settings)
        kept = dataclasses.replace(running, **{k: getattr(fresh, k) for k in RELOADABLE_ENGINE_SETTINGS})
        return Reconfiguration(risk_limits(self.settings), kept)

    def reconfigure(self, engine: Engine) -> None:
        """Rebuild what a reload changes in a running Engine, through ``Engine.reconfigure`` (a
        new risk gate and breakers, which keep their memory; the reloadable settings)."""
        change = self.reloaded(engine.settings)
        engine.reconfigure(change.limits, change.engine)
