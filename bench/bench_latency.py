"""Candle-close -> order latency through the real stack, measured at the loopback exchange.

The loopback Binance exchange runs in its own (spawned) process. It stamps, with
its own ``perf_counter_ns``:

* t0: the closing kline push (``k.x = true``) being queued to the websocket;
* t1: the order request arriving at ``POST /api/v3/order`` (after signature check).

The bot side, in this process: ccxt.pro ``LiveFeed`` -> ``Engine`` -> strategy ->
risk gate -> a ccxt REST executor placing a market order with a client order id
derived from the bar. Latency = t1 - t0 of the same bar (both on the exchange's
clock: no cross-process clock error).

Two phases in one run: **baseline** (a strategy that alternates long/flat with no
model: feed + engine + gate + REST only) and **ensemble** (the default 5-model
ensemble: 2 LSTMs, CNN-LSTM, Transformer, gradient boosting, each predicting on
its latest feature window every bar, votes combined by ``strategies.ensemble.vote``;
the direction still alternates so every bar produces an order). Models come from
``--models-dir`` when the registry holds them, else the default specs with
untrained weights (same inference cost).

    .venv/bin/python bench/bench_latency.py --bars 200
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bot.events import Direction, Fact, MarketEvent, OrderFilled, OrderIntent, OrderSubmitted, Side  # noqa: E402
from strategies.base import BarContext, Strategy  # noqa: E402

TF_MS = 3_600_000
START_MS = 1_609_459_200_000  # 2021-01-01


# -- the exchange process ---------------------------------------------------------------


def sim_main(conn: Any, data_dir: str, speed: float, symbols: tuple[str, ...], faults: dict[str, Any],
             start_ms: int) -> None:
    from bot.exchange_sim import FaultSettings, SimExchange, SimSettings
    from bot.exchange_sim import rest as rest_mod
    from bot.exchange_sim import ws as ws_mod

    closes: dict[tuple[str, int], list[int]] = {}
    orders: dict[str, int] = {}
    publish = ws_mod.Hub.publish_obj

    def publish_obj(self: Any, stream: str, payload: dict) -> None:
        k = payload.get("k") if isinstance(payload, dict) else None
        if k is not None and k.get("x"):
            closes.setdefault((k["s"], int(k["t"])), []).append(time.perf_counter_ns())
        publish(self, stream, payload)

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


class CcxtExecutor:
    """Minimal REST executor (bench only): market orders, fills from the response."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange
        self.sent: list[str] = []

    async def submit(self, intent: OrderIntent, now_ms: int) -> list[Fact]:
        cid = f"b{intent.ts}{intent.leg[:2]}"
        self.sent.append(cid)
        # 5-decimal lots; a sell reports the whole engine-side amount as filled (dust stays on the
        # exchange, which has plenty): the bench measures latency, not accounting.
        qty = math.floor(intent.amount * 1e5) / 1e5
        o = await self.exchange.create_order(intent.symbol, "market", intent.side.value, qty,
                                             None, {"newClientOrderId": cid})
        facts: list[Fact] = [OrderSubmitted(cid, intent.intent_id, intent.symbol, intent.side, intent.amount,
                                            intent.order_type, intent.price, now_ms, str(o.get("id", "")))]
        filled = float(o.get("filled") or 0.0)
        price = float(o.get("average") or intent.price or 0.0)
        fee = o.get("fee") or {}
        fee_cost = float(fee.get("cost") or 0.0)
        if fee.get("currency") == intent.symbol.split("/")[0]:  # fee taken from the base received
            filled, fee_cost = math.floor((filled - fee_cost) * 1e5) / 1e5, fee_cost * price
        if intent.side is Side.SELL:
            filled = intent.amount
        if filled > 0:
            facts.append(OrderFilled(cid, f"{cid}#1", intent.symbol, intent.side, filled, price, fee_cost,
                                     now_ms))
        return facts

    async def on_market(self, event: MarketEvent) -> list[Fact]:
        return []


class Alternating(Strategy):
    """Long on even bars, flat on odd ones (one order per bar); optionally runs the ensemble."""

    warmup = 2

    def __init__(self, name: str, symbols: tuple[str, ...], models: list[Any] | None = None) -> None:
        super().__init__(name, symbols, "1h")
        self.models = models or []
        self.buffers: dict[str, Any] = {}
        self.inference_s: list[float] = []

    def evaluate(self, ctx: BarContext) -> Any:
        c = ctx.candle
        if self.models:
            from bot.feature_buffer import FeatureBuffer
            from strategies.ensemble import VotingRule, vote

            fb = self.buffers.get(c.symbol)
            if fb is None:
                fb = self.buffers[c.symbol] = FeatureBuffer(c.symbol, "1h", n_steps=100, capacity=512)
            fb.on_candle(c)
            if not fb.ready:
                return None
            t0 = time.perf_counter()
            probs = {m.name: float(m.predict(fb.latest_window(m.window))[0]) for m in self.models}
            vote(probs, VotingRule(k=4, n=len(probs)))
            self.inference_s.append(time.perf_counter() - t0)
        direction = Direction.LONG if (c.ts // TF_MS) % 2 == 0 else Direction.FLAT
        return self.signal(ctx, direction, 90.0, size_pct=5.0)


def default_ensemble(models_dir: Path | None) -> tuple[list[Any], str]:
    import torch
    from sklearn.ensemble import HistGradientBoostingClassifier

    from strategies.features import DEFAULT_SPEC
    from strategies.model_config import default_models
    from strategies.models import build_model

    if models_dir is not None:
        from strategies.registry import list_models, load_model

        found = [p for p in list_models(models_dir) if p.parent.name == "BTC_USDT_1h"]
        if len(found) >= 5:
            return [load_model(p) for p in found[:5]], f"registry {models_dir}"
    torch.manual_seed(0)
    models = []
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
        models.append(m)
    return models, "default specs, untrained weights"


async def run_phase(url: str, symbols: tuple[str, ...], bars: int, strategy: Alternating,
                    data_dir: Path) -> CcxtExecutor:
    from bot.app import build_engine
    from bot.clock import LiveClock
    from bot.config import Settings
    from bot.exchange_sim import make_ccxt_binance
    from bot.feeds.live import LiveFeed
    from bot.feeds.live_settings import LiveFeedSettings
    from bot.store import Store

    client = make_ccxt_binance(url, api_key="sim-key", secret="sim-secret")
    store = await Store.open(":memory:")
    settings = Settings(data={"dir": data_dir}, strategies=[{"name": "x", "kind": "buy_and_hold"}],
                        risk={"max_position_pct": 50, "min_strength": 10, "max_heat_pct": 50})
    executor = CcxtExecutor(client)
    engine = build_engine(settings, strategies=[strategy], store=store, clock=LiveClock(),
                          executor=executor, initial_equity=1_000_000.0)
    feed = LiveFeed(client, LiveFeedSettings(symbols=symbols, timeframes=("1h",), max_clock_skew_ms=None,
                                             since_ms=START_MS, kline_interval_s=30.0), LiveClock())
    # bars arrive every ~150 ms: far above the production order-rate limit, which is not under test
    engine.gate.limits = dataclasses.replace(engine.gate.limits, max_orders_per_minute=None)
    await client.load_markets()
    # bars closing 20 bars after "now" arrive live, after the REST backfill has been caught up
    live_from = int(await client.fetch_time()) + 20 * TF_MS
    target = None
    try:
        async for event in feed:
            await engine.on_event(event)
            if target is None and getattr(event, "ts", 0) >= live_from:
                target = engine.stats.candles + bars
            if target is not None and engine.stats.candles >= target:
                break
    finally:
        await feed.close()
        await store.close()
    executor.stats = (engine.state.value, dict(engine.stats.denials_by_check), engine.stats.candles)  # type: ignore[attr-defined]
    return executor


def percentiles(xs: list[float]) -> tuple[float, float, float]:
    a = np.asarray(xs)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def phase_latencies(sent: list[str], closes: dict[tuple[str, int], list[int]], orders: dict[str, int],
                    since_ns: int, caught_up_ms: float) -> list[float]:
    """Latency (ms) of each order this phase sent for a bar whose close was pushed during the phase.

    perf_counter_ns is CLOCK_MONOTONIC on Linux: comparable across processes of one host.
    Samples before the first one under ``caught_up_ms`` are start-up queueing (live bars that
    arrived while the REST backfill was still being processed) and are dropped.
    """
    out = []
    for cid in sent:
        close_ts = int(cid[1:-2])
        got = orders.get(cid)
        # the latest push of that bar's close before the order (a stream re-subscribed by a later
        # phase may push the same bar again)
        pushes = [t for t in closes.get(("BTCUSDT", close_ts - TF_MS), ()) if t <= (got or 0)]
        pushed = max(pushes) if pushes else None
        if pushed is not None and got is not None and pushed >= since_ns:
            out.append((got - pushed) / 1e6)
    first = next((i for i, x in enumerate(out) if x < caught_up_ms), len(out))
    return out[first:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=200, help="live bars per phase (after warm-up)")
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
    models, origin = default_ensemble(args.models_dir)
    sim = SimProcess(args.data_dir, TF_MS / args.bar_ms, symbols, START_MS + 400 * TF_MS)
    phases: dict[str, tuple[int, Alternating, CcxtExecutor]] = {}
    try:
        # a short discarded warm-up phase first: the exchange starts its kline streams lazily
        for phase, strat, bars in (("warmup", Alternating("warm", symbols), 5),
                                   ("baseline", Alternating("base", symbols), args.bars),
                                   ("ensemble", Alternating("ens", symbols, models), args.bars)):
            mark = time.perf_counter_ns()
            executor = asyncio.run(run_phase(sim.url, symbols, bars, strat, args.data_dir))
            phases[phase] = (mark, strat, executor)
        del phases["warmup"]
    finally:
        closes, orders, counters = sim.finish()
    lat = {p: phase_latencies(ex.sent, closes, orders, mark, args.bar_ms / 2)
           for p, (mark, _, ex) in phases.items()}
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
    inf = phases["ensemble"][1].inference_s
    if inf:
        i50, i99, imax = percentiles([x * 1000 for x in inf])
        print(f"ensemble inference (5 models + vote) per bar: p50 {i50:.2f} ms, p99 {i99:.2f} ms, "
              f"max {imax:.2f} ms ({len(inf)} bars incl. backfill)")
    if lat["ensemble"]:
        p99 = percentiles(lat["ensemble"])[1]
        print(f"target p99 <= 20 ms with the ensemble: {'met' if p99 <= 20.0 else 'NOT met'} ({p99:.2f} ms)")
    print(f"exchange fault counters: {counters}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
