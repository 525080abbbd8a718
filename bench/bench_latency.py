"""Candle-close -> order latency through the real stack, measured at the loopback exchange.

The loopback Binance exchange runs in its own (spawned) process. It stamps, with
its own ``perf_counter_ns``:

* t0: the closing kline push (``k.x = true``) being queued to the websocket;
* t1: the order request arriving at ``POST /api/v3/order`` (after signature check).

The bot side, in this process, is the daemon's real exchange path: ccxt.pro
``LiveFeed`` -> ``Engine`` built by ``Kernel.exchange_engine`` (start-up
reconciliation, durable SQLite store) -> strategy -> risk gate -> ``ExchangeExecutor``
placing a market order through ccxt. Each order is matched to its bar through the
store (``exchange_orders.signal_id`` names the bar), never by parsing ids or by
arrival order. Latency = t1 - t0 of the same bar (perf_counter_ns is CLOCK_MONOTONIC:
comparable across processes of one host).

Two phases in one run, each on its own account (a fresh exchange process replaying the
same bars) and its own store, each measured after a few discarded live bars (the exchange
starts its streams lazily). **baseline**: a strategy that alternates long/flat with no
model (feed + engine + gate + exchange executor only); **ensemble**: the same, but
every bar first runs the real ``NeuralEnsemble.evaluate`` with the default 5 models:
2 LSTMs, CNN-LSTM, Transformer, gradient boosting; feature update, 5 predictions,
vote; attributions whenever the ensemble itself acts, computed after the order
left, as in production; the direction still alternates so every bar produces an order. Models come from
``--models-dir`` when the registry holds them, else the default specs with
untrained weights (same inference cost).

    .venv/bin/python bench/bench_latency.py --bars 200
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.core.events import Direction  # noqa: E402
from strategies.base import BarContext, Strategy  # noqa: E402

TF_MS = 3_600_000
START_MS = 1_609_459_200_000  # 2021-01-01


# -- the exchange process ---------------------------------------------------------------


def sim_main(conn: Any, data_dir: str, speed: float, symbols: tuple[str, ...], faults: dict[str, Any],
             start_ms: int) -> None:
    from bot.sim import FaultSettings, SimExchange, SimSettings
    from bot.sim import rest as rest_mod
    from bot.sim import ws as ws_mod

    closes: dict[tuple[str, int], list[int]] = {}
    orders: dict[str, int] = {}
    publish = ws_mod.Hub.publish_obj

    def publish_obj(self: Any, stream: str, payload: dict, is_depth: bool = False) -> None:
        k = payload.get("k") if isinstance(payload, dict) else None
        if k is not None and k.get("x"):
            closes.setdefault((k["s"], int(k["t"])), []).append(time.perf_counter_ns())
        publish(self, stream, payload, is_depth)

    create = rest_mod.RestApi.order_create

    async def order_create(self: Any, request: Any, params: dict[str, str]) -> Any:
        orders[params.get("newClientOrderId", "")] = time.perf_counter_ns()
        return await create(self, request, params)

    ws_mod.Hub.publish_obj = publish_obj  # type: ignore[method-assign]
    rest_mod.RestApi.order_create = order_create  # type: ignore[method-assign]

    async def run() -> None:
        settings = SimSettings(data_dir=Path(data_dir), speed=speed, symbols=symbols, timeframes=("1h",),
                               start_ms=start_ms, book_replay=False, matching_book="synthetic",
                               balances={"USDT": 10_000_000.0}, faults=FaultSettings(**faults))
        async with SimExchange(settings) as sim:
            conn.send(sim.http_url)
            while not conn.poll():
                await asyncio.sleep(0.05)
            conn.recv()
            conn.send((closes, orders, dataclasses.asdict(sim.counters)))

    asyncio.run(run())


class SimProcess:
    def __init__(self, data_dir: Path, speed: float, symbols: tuple[str, ...], start_ms: int,
                 faults: dict[str, Any] | None = None) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=sim_main, args=(child, str(data_dir), speed, symbols, faults or {},
                                                       start_ms), daemon=True)
        self.proc.start()
        self.url: str = self.conn.recv()
        self.pid = self.proc.pid

    def finish(self) -> tuple[dict[tuple[str, int], list[int]], dict[str, int], dict[str, int]]:
        self.conn.send("stop")
        result = self.conn.recv()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
        return result


# -- the bot side -------------------------------------------------------------------------


class Alternating(Strategy):
    """Long on even bars, flat on odd ones (one order per bar); optionally runs the ensemble first."""

    warmup = 2

    def __init__(self, name: str, symbols: tuple[str, ...], ensemble: Any = None) -> None:
        super().__init__(name, symbols, "1h")
        self.ensemble = ensemble
        self.inference_s: list[float] = []
        self.inference_at: dict[int, float] = {}  # bar open time -> seconds of its evaluate
        self.explain_s: list[float] = []  # attributions, after the order (not in the latency)
        self._ensemble_signal: Any = None

    def evaluate(self, ctx: BarContext) -> Any:
        c = ctx.candle
        if self.ensemble is not None:
            t0 = time.perf_counter()
            self._ensemble_signal = self.ensemble.evaluate(ctx)
            self.inference_s.append(time.perf_counter() - t0)
            self.inference_at[c.ts] = self.inference_s[-1]
        direction = Direction.LONG if (c.ts // TF_MS) % 2 == 0 else Direction.FLAT
        return self.signal(ctx, direction, 90.0, size_pct=5.0)

    def explain(self, signal: Any) -> dict[str, float]:
        """The ensemble's attributions, computed (as in production) after the order left."""
        if self.ensemble is None or self._ensemble_signal is None:
            return {}
        t0 = time.perf_counter()
        attr: dict[str, float] = self.ensemble.explain(self._ensemble_signal)
        self.explain_s.append(time.perf_counter() - t0)
        return attr


def default_ensemble(models_dir: Path | None) -> tuple[Any, str]:
    """The real ``NeuralEnsemble`` over the default 5 model specs (registry models when present)."""
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier

    from strategies.features.compute import DEFAULT_SPEC
    from strategies.models.spec import default_models
    from strategies.models.zoo import build_model
    from strategies.holders import neural_ensemble

    if models_dir is not None:
        from strategies.models.registry import list_models

        found = [p.name for p in list_models(models_dir) if p.parent.name == "BTC_USDT_1h"]
        if len(found) >= 5:
            return neural_ensemble("ens", ("BTC/USDT",), "1h", models=found[:5], models_dir=str(models_dir)), \
                f"registry {models_dir}"
    torch.manual_seed(0)
    models = {}
    rng = np.random.default_rng(0)
    for spec in default_models():
        m = build_model(spec, DEFAULT_SPEC.n_features)
        if spec.kind == "gbm":
            x = rng.normal(size=(400, m._tabular(np.zeros((1, spec.window, m.n_features))).shape[1]))
            m.estimator = HistGradientBoostingClassifier(max_iter=spec.gbm_max_iter, early_stopping=False,
                                                         max_leaf_nodes=spec.gbm_max_leaf_nodes).fit(
                x, rng.integers(0, 2, 400))
        else:
            m.module.eval()
        models[spec.name] = m
    return neural_ensemble("ens", ("BTC/USDT",), "1h", models=models), "default specs, untrained weights"


async def run_phase(url: str, symbols: tuple[str, ...], bars: int, strategy: Alternating,
                    data_dir: Path, db: Path, warmup_bars: int) -> dict[str, int]:
    """Trade ``warmup_bars`` + ``bars`` live bars on the exchange path; return client order id ->
    bar open time of the orders of the last ``bars`` (the exchange starts its streams lazily)."""
    from bot.core.clock import LiveClock
    from bot.config.settings import Settings
    from bot.sim import make_ccxt_binance
    from bot.core.heap import freeze_long_lived
    from bot.kernel.kernel import Kernel
    from bot.feeds.live import LiveFeed
    from bot.feeds.live_settings import LiveFeedSettings
    from bot.store.store import Store

    rest = make_ccxt_binance(url, api_key="sim-key", secret="sim-secret", pro=False)
    feed_client = make_ccxt_binance(url)
    store = await Store.open(db)
    # bars arrive every few hundred ms: far above the production order-rate limit, which is not under test
    settings = Settings(mode="sandbox", feed={"source": "exchange"}, data={"dir": data_dir},
                        risk={"max_position_pct": 50, "min_strength": 10, "max_heat_pct": 50,
                              "max_orders_per_minute": None})
    clock = LiveClock()
    try:
        built = await Kernel(settings).exchange_engine(rest, store, clock, [strategy], list(symbols))
        engine = built.engine
        if built.report.mismatches:  # a halted engine sends nothing: say why instead of 0 samples
            raise RuntimeError(f"{strategy.name}: start-up reconciliation halted: {built.report.mismatches}")
        feed = LiveFeed(feed_client, LiveFeedSettings(symbols=symbols, timeframes=("1h",), max_clock_skew_ms=None,
                                                      since_ms=START_MS, kline_interval_s=30.0), clock)
        # bars closing 20 bars after "now" arrive live, after the REST backfill has been caught up
        live_from = int(await rest.fetch_time()) + 20 * TF_MS
        target = None
        try:
            async for event in feed:
                await engine.on_event(event)
                # steady state: a live bar handled with nothing queued behind it (backfill caught up)
                if target is None and getattr(event, "ts", 0) >= live_from and feed._queue.qsize() == 0:
                    target = engine.stats.candles + warmup_bars + bars
                    freeze_long_lived()  # as the daemon does once warmed up (Kernel.daemon)
                    live_from = event.ts + (1 + warmup_bars) * TF_MS
                if target is not None and engine.stats.candles >= target:
                    break
        finally:
            await feed.close()
        await store.flush()
        orders = await store.load_exchange_orders()
    finally:
        await store.close()
        await rest.close()
    bars_of = {r["client_order_id"]: bar_of(r["signal_id"], strategy.name) for r in orders}
    return {cid: bar for cid, bar in bars_of.items() if bar is not None and bar >= live_from}


def bar_of(signal_id: str, strategy: str) -> int | None:
    """Open time of the bar a strategy signal id names (``strategy:symbol:tf:close_ts``); else None
    (protective exits: stop / take-profit orders are not candle-close reactions)."""
    parts = signal_id.split(":")
    if len(parts) != 4 or parts[0] != strategy or not parts[3].isdigit():
        return None
    return int(parts[3]) - TF_MS


def percentiles(xs: list[float]) -> tuple[float, float, float]:
    a = np.asarray(xs)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def phase_latencies(sent: dict[str, int], closes: dict[tuple[str, int], list[int]], orders: dict[str, int],
                    since_ns: int) -> list[float]:
    """Latency (ms) from the closing push of each order's own bar to that order's arrival.

    ``sent`` maps client order id -> bar open time (from the store). Only bars that closed
    live during this phase count; of that bar's closing pushes the last one before the order.
    """
    out = []
    for cid, bar in sorted(sent.items(), key=lambda kv: kv[1]):
        got = orders.get(cid)
        pushes = [t for t in closes.get(("BTCUSDT", bar), ()) if since_ns <= t <= (got or 0)]
        if got is not None and pushes:
            out.append((got - max(pushes)) / 1e6)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=200, help="live bars per phase (after warm-up)")
    ap.add_argument("--warmup-bars", type=int, default=5, help="live bars per phase before measuring")
    ap.add_argument("--bar-ms", type=float, default=400.0, help="real ms per simulated 1h bar")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for inference")
    ap.add_argument("--samples", action="store_true", help="print every sample")
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    symbols = ("BTC/USDT",)
    import torch

    torch.set_num_threads(args.threads)
    ensemble, origin = default_ensemble(args.models_dir)
    phases: dict[str, tuple[int, Alternating, dict[str, int]]] = {}
    lat: dict[str, list[float]] = {}
    counters: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # each phase trades its own account (a fresh exchange process over the same bars) into its
        # own store: one phase's fills never become the next one's start-up reconciliation
        for phase, strat in (("baseline", Alternating("base", symbols)),
                             ("ensemble", Alternating("ens", symbols, ensemble))):
            sim = SimProcess(args.data_dir, TF_MS / args.bar_ms, symbols, START_MS + 400 * TF_MS)
            try:
                mark = time.perf_counter_ns()
                sent = asyncio.run(run_phase(sim.url, symbols, args.bars, strat, args.data_dir,
                                             Path(tmp) / f"{phase}.sqlite", args.warmup_bars))
            finally:
                closes, orders, counters[phase] = sim.finish()
            phases[phase] = (mark, strat, sent)
            lat[phase] = phase_latencies(sent, closes, orders, mark)
    if "--samples" in sys.argv:
        print({p: [round(x) for x in xs] for p, xs in lat.items()})
    base_p99 = percentiles(lat["baseline"])[1] if lat["baseline"] else float("nan")
    print(f"candle-close -> order latency at the loopback exchange ({origin}; 1 symbol, 1h bars every "
          f"{args.bar_ms:.0f} ms real time; exchange in its own process)")
    print(f"{'phase':<10}{'samples':>9}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p99/base':>10}")
    for phase, xs in lat.items():
        if not xs:
            print(f"{phase:<10}{0:>9}  (no samples)")
            continue
        p50, p99, mx = percentiles(xs)
        print(f"{phase:<10}{len(xs):>9}{p50:>10.2f}{p99:>10.2f}{mx:>10.2f}{p99 / base_p99:>10.2f}")
    _, ens, ens_sent = phases["ensemble"]
    live = [ens.inference_at[b] * 1000 for b in ens_sent.values() if b in ens.inference_at]
    for what, xs in (("incl. backfill", [x * 1000 for x in ens.inference_s]), ("measured live bars", live)):
        if xs:
            i50, i99, imax = percentiles(xs)
            print(f"NeuralEnsemble.evaluate (features, 5 models, vote) per bar: p50 {i50:.2f} ms, "
                  f"p99 {i99:.2f} ms, max {imax:.2f} ms ({len(xs)} bars, {what})")
    expl = phases["ensemble"][1].explain_s
    if expl:
        e50, e99, emax = percentiles([x * 1000 for x in expl])
        acted = sum(1 for x in expl if x > 1e-4)
        print(f"NeuralEnsemble.explain (integrated gradients, after the order left) per bar: p50 {e50:.2f} ms, "
              f"p99 {e99:.2f} ms, max {emax:.2f} ms ({acted} of {len(expl)} bars explained)")
    if lat["ensemble"]:
        p99 = percentiles(lat["ensemble"])[1]
        print(f"target p99 <= 10 ms with the ensemble: {'met' if p99 <= 10.0 else 'NOT met'} ({p99:.2f} ms)")
    print(f"exchange fault counters: {counters}")
    return 0 if all(lat.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
