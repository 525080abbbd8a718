"""Health and Prometheus metrics of one daemon, served over HTTP (aiohttp).

``OpsMetrics`` owns a per-daemon ``CollectorRegistry`` (two daemons in one process,
or a test next to a daemon, never share series). Feed it with:

* ``metrics.listener`` subscribed to the Engine (signals, orders, fills, denials,
  equity snapshots);
* ``metrics.market_event(event)`` for every event the feed delivers (events/s and
  the age of each feed's last message);
* ``metrics.observe_decision(seconds)`` / ``metrics.observe_inference(...)``,
  ``metrics.retrain(outcome)``, ``metrics.set_reconnects(...)`` from the daemon.

``HealthServer`` serves ``GET /health`` (JSON; 200 only while ``status`` is ``ok``, else 503
with the body, so a load balancer or monitor alerts on a degraded daemon) and
``GET /metrics`` (Prometheus text).
It binds 127.0.0.1 by default; when a token is configured every request needs
``Authorization: Bearer <token>`` (or ``?token=``), and a non-loopback bind refuses
to start without one.
"""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bot.config.ops import HealthConfig, public_bind_problem
from bot.core.events import (
    Candle,
    EquitySnapshot,
    Fact,
    MarketEvent,
    OrderBook,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    Signal,
    Trade,
)

log = structlog.get_logger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
INFERENCE_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5)

HealthProvider = Callable[[], dict[str, Any]]


def _feed_key(event: MarketEvent) -> str:
    if isinstance(event, Candle):
        return f"ohlcv:{event.symbol}:{event.timeframe}"
    if isinstance(event, OrderBook):
        return f"book:{event.symbol}"
    if isinstance(event, Trade):
        return f"trades:{event.symbol}"
    return type(event).__name__


class OpsMetrics:
    """Prometheus series of one daemon plus the small state ``/health`` reports."""

    def __init__(self, events_window_s: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._monotonic = monotonic
        self._window_s = events_window_s
        self._event_times: deque[float] = deque()
        self.feed_last: dict[str, float] = {}  # feed key -> monotonic time of its last message
        r = self.registry
        self.events = Counter("neuralbot_events", "Market events received", ["kind"], registry=r)
        self.events_rate = Gauge(
            "neuralbot_events_per_second", "Market events per second over the recent window", registry=r
        )
        self.candles = Counter("neuralbot_candles", "Closed candles processed", ["symbol", "timeframe"], registry=r)
        self.feed_age = Gauge(
            "neuralbot_feed_last_message_age_seconds", "Seconds since a feed's last message", ["feed"], registry=r
        )
        self.signals = Counter("neuralbot_signals", "Signals produced", ["strategy", "direction"], registry=r)
        self.orders = Counter("neuralbot_orders", "Orders submitted", ["symbol", "side"], registry=r)
        self.fills = Counter("neuralbot_fills", "Fills received", ["symbol", "side"], registry=r)
        self.denials = Counter("neuralbot_denials", "Intents denied by the risk gate", ["check"], registry=r)
        self.decision_latency = Histogram(
            "neuralbot_candle_to_order_seconds",
            "Candle-close message received -> order request sent",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "neuralbot_inference_seconds",
            "Strategy / model evaluation time per closed bar",
            ["strategy"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.equity = Gauge("neuralbot_equity", "Portfolio equity (quote)", registry=r)
        self.cash = Gauge("neuralbot_cash", "Free cash (quote)", registry=r)
        self.exposure = Gauge("neuralbot_exposure", "Market value of open positions (quote)", registry=r)
        self.heat = Gauge("neuralbot_heat", "Sum of loss-to-stop over open positions (quote)", registry=r)
        self.heat_pct = Gauge("neuralbot_heat_pct", "Heat as a percentage of equity", registry=r)
        self.reconnects = Gauge("neuralbot_feed_reconnects", "Feed reconnects since start", ["feed"], registry=r)
        self.retrains = Counter("neuralbot_retrains", "Retrain attempts by outcome", ["outcome"], registry=r)
        self.model_age = Gauge("neuralbot_model_age_seconds", "Age of each loaded model", ["model"], registry=r)
        self.trading_state = Gauge(
            "neuralbot_trading_state", "1 for the current trading state", ["state"], registry=r
        )
        self.notifications_dropped = Counter(
            "neuralbot_notifications_dropped", "Notifications dropped (queue full or retries exhausted)",
            registry=r,
        )
        self.errors = Counter("neuralbot_errors", "Errors handled by the daemon", ["where"], registry=r)
        self.up_since = self._monotonic()
        self.last_signals: deque[Signal] = deque(maxlen=20)
        self.last_equity: EquitySnapshot | None = None

    # -- inputs ------------------------------------------------------------------------

    def market_event(self, event: MarketEvent) -> None:
        now = self._monotonic()
        key = _feed_key(event)
        self.feed_last[key] = now
        self.events.labels(type(event).__name__.lower()).inc()
        if isinstance(event, Candle):
            self.candles.labels(event.symbol, event.timeframe).inc()
        times = self._event_times
        times.append(now)
        horizon = now - self._window_s
        while times and times[0] < horizon:
            times.popleft()

    def listener(self, item: Fact | Signal) -> None:
        """Subscribe to the Engine with this."""
        if isinstance(item, EquitySnapshot):
            self.last_equity = item
            self.equity.set(item.equity)
            self.cash.set(item.cash)
            self.exposure.set(item.exposure)
            self.heat.set(item.heat)
            self.heat_pct.set(100.0 * item.heat / item.equity if item.equity > 0 else 0.0)
        elif isinstance(item, Signal):
            self.signals.labels(item.strategy, item.direction.value).inc()
            self.last_signals.append(item)
        elif isinstance(item, OrderSubmitted):
            self.orders.labels(item.symbol, item.side.value).inc()
        elif isinstance(item, OrderFilled):
            self.fills.labels(item.symbol, item.side.value).inc()
        elif isinstance(item, OrderDenied):
            self.denials.labels(item.check).inc()

    def observe_decision(self, seconds: float) -> None:
        self.decision_latency.observe(seconds)

    def observe_inference(self, strategy: str, seconds: float) -> None:
        self.inference.labels(strategy).observe(seconds)

    def set_reconnects(self, feed: str, count: int) -> None:
        self.reconnects.labels(feed).set(count)

    def retrain(self, outcome: str) -> None:
        self.retrains.labels(outcome).inc()

    def set_state(self, state: str, all_states: tuple[str, ...] = ("active", "reducing", "halted")) -> None:
        for s in all_states:
            self.trading_state.labels(s).set(1.0 if s == state else 0.0)

    def set_model_ages(self, ages: dict[str, float]) -> None:
        for name, age in ages.items():
            self.model_age.labels(name).set(age)

    # -- outputs -----------------------------------------------------------------------

    def events_per_second(self) -> float:
        now = self._monotonic()
        times = self._event_times
        while times and times[0] < now - self._window_s:
            times.popleft()
        span = min(self._window_s, max(now - self.up_since, 1e-9))
        return len(times) / span

    def feed_ages(self) -> dict[str, float]:
        now = self._monotonic()
        return {k: round(now - t, 3) for k, t in sorted(self.feed_last.items())}

    def render(self) -> bytes:
        self.events_rate.set(self.events_per_second())
        for key, age in self.feed_ages().items():
            self.feed_age.labels(key).set(age)
        return generate_latest(self.registry)


class HealthServer:
    """``/health`` and ``/metrics`` over aiohttp; ``provider()`` supplies the health JSON."""

    def __init__(self, config: HealthConfig, metrics: OpsMetrics, provider: HealthProvider) -> None:
        if problem := public_bind_problem(config.host, config.token):
            raise ValueError(f"refusing to serve health: {problem}")
        self.config = config
        self.metrics = metrics
        self.provider = provider
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def _authorized(self, request: web.Request) -> bool:
        if self.config.token is None:
            return True
        expected = self.config.token.get_secret_value()
        if not expected.strip():
            return False  # a blank token is no password: fail closed
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else request.query.get("token", "")
        return hmac.compare_digest(given.encode(), expected.encode())

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _health(self, request: web.Request) -> web.Response:
        body = self.provider()
        status = 200 if body.get("status") == "ok" else 503  # degraded, starting, stopping: not healthy
        return web.json_response(body, status=status, dumps=_dumps)

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def start(self) -> int:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = await serve(self._runner, self.config.host, self.config.port, self.config.port_file)
        log.info("health_listening", host=self.config.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.config.port_file is not None:
            self.config.port_file.unlink(missing_ok=True)


async def serve(runner: web.AppRunner, host: str, port: int, port_file: Path | None) -> int:
    """Listen on ``host:port`` (0: ephemeral); write ``host:port`` to ``port_file``; the bound port."""
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    if port_file is not None:
        port_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(f"{host}:{bound}\n")
        tmp.replace(port_file)
    return bound


def _dumps(obj: Any) -> str:

    return json.dumps(obj, default=str, sort_keys=True)
