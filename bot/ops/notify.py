"""Notifications: a generic JSON webhook and a Telegram-bot-API-compatible sender.

``Notifier.notify(kind, title, **fields)`` never blocks and never raises: the
message goes into a bounded queue (when full it is dropped and counted) and a
single worker task delivers it to every configured sink, retrying transient
failures (connection errors, timeouts, HTTP 429 and 5xx) with exponential backoff
and honouring ``Retry-After`` / Telegram's ``parameters.retry_after``. A 4xx other
than 429 is permanent and not retried.

Kinds: ``fill``, ``stop`` (a protective exit filled), ``state`` (daemon started,
stopping, reloaded, trading state changed), ``error``, ``retrain``.
``Notifier.listener`` turns Engine facts into ``fill`` / ``stop`` messages.

Webhook body::

    {"kind": "fill", "title": "...", "fields": {...}, "ts": 1700000000000, "source": "neuralbot"}

Telegram: ``POST {base_url}/bot{token}/sendMessage`` with ``{"chat_id", "text"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import structlog

from bot.core.clock import Clock, LiveClock
from bot.core.events import PROTECTIVE_LEGS, Fact, OrderFilled, Signal, StrategyFailed
from bot.config.ops import NotifyConfig

log = structlog.get_logger(__name__)



@dataclass(frozen=True, slots=True)
class Message:
    kind: str
    title: str
    ts: int
    fields: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"[{self.kind}] {self.title}"]
        lines += [f"{k}: {v}" for k, v in self.fields.items()]
        return "\n".join(lines)


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Sink(Protocol):
    name: str

    async def send(self, session: aiohttp.ClientSession, msg: Message) -> None: ...


def _retry_after(resp: aiohttp.ClientResponse, body: Any) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is not None:
        with contextlib.suppress(ValueError):
            return float(value)
    if isinstance(body, dict):
        params = body.get("parameters")
        if isinstance(params, dict) and "retry_after" in params:
            with contextlib.suppress(TypeError, ValueError):
                return float(params["retry_after"])
    return None


async def _post_json(session: aiohttp.ClientSession, url: str, payload: dict[str, Any], what: str) -> Any:
    try:
        async with session.post(url, json=payload) as resp:
            body: Any = None
            with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                body = await resp.json(content_type=None)
            if resp.status < 300:
                return body
            retryable = resp.status == 429 or resp.status >= 500
            raise DeliveryError(f"{what}: HTTP {resp.status}", retryable, _retry_after(resp, body))
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}", True) from None


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, session: aiohttp.ClientSession, msg: Message) -> None:
        payload = {"kind": msg.kind, "title": msg.title, "fields": msg.fields, "ts": msg.ts,
                   "source": "neuralbot"}
        await _post_json(session, self.url, payload, "webhook")


class TelegramSink:
    name = "telegram"

    def __init__(self, base_url: str, token: str, chat_id: str) -> None:
        self._url = f"{base_url.rstrip('/')}/bot{token}/sendMessage"
        self.chat_id = chat_id

    async def send(self, session: aiohttp.ClientSession, msg: Message) -> None:
        body = await _post_json(
            session, self._url, {"chat_id": self.chat_id, "text": msg.text(),
                                 "disable_web_page_preview": True}, "telegram",
        )
        if isinstance(body, dict) and body.get("ok") is False:
            raise DeliveryError(f"telegram: {body.get('description', 'not ok')}", False)


def sinks_from_config(cfg: NotifyConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if cfg.webhook_url:
        sinks.append(WebhookSink(cfg.webhook_url))
    if cfg.telegram_token is not None and cfg.telegram_chat_id is not None:
        sinks.append(TelegramSink(cfg.telegram_base_url, cfg.telegram_token.get_secret_value(),
                                  cfg.telegram_chat_id))
    return sinks


@dataclass(slots=True)
class NotifyStats:
    queued: int = 0
    delivered: int = 0
    dropped_full: int = 0
    failed: int = 0  # per sink, after exhausting retries or on a permanent error
    retries: int = 0


class Notifier:
    def __init__(
        self,
        config: NotifyConfig,
        *,
        clock: Clock | None = None,
        sinks: list[Sink] | None = None,
        on_drop: Callable[[], None] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or LiveClock()
        self.sinks = sinks if sinks is not None else sinks_from_config(config)
        self.stats = NotifyStats()
        self._queue: asyncio.Queue[Message] = asyncio.Queue(config.queue_size)
        self._on_drop = on_drop
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None and self.sinks:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
            self._task = asyncio.create_task(self._worker(), name="notifier")

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``drain_timeout_s``), then stop."""
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), drain_timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reconfigure(self, config: NotifyConfig) -> None:
        """Apply a reloaded ``[notify]`` section (sinks and filters; queue size stays)."""
        self.config = config
        self.sinks = sinks_from_config(config)

    # -- producing -----------------------------------------------------------------------

    def notify(self, kind: str, title: str, **fields: Any) -> bool:
        """Queue a message; ``False`` if it was filtered out or dropped (queue full)."""
        if not self.sinks or kind not in self.config.events:
            return False
        msg = Message(kind, title, self.clock.now_ms(), {k: _plain(v) for k, v in fields.items()})
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.stats.dropped_full += 1
            if self._on_drop is not None:
                self._on_drop()
            log.warning("notification_dropped", kind=kind, reason="queue full")
            return False
        self.stats.queued += 1
        return True

    def listener(self, item: Fact | Signal) -> None:
        """Subscribe to the Engine: fills, protective exits and disabled strategies become notifications."""
        if isinstance(item, StrategyFailed) and item.disabled:
            self.notify("error", f"strategy {item.strategy} disabled after {item.consecutive} failures in a row",
                        symbol=item.symbol, call=item.call, error=item.error)
            return
        if not isinstance(item, OrderFilled):
            return
        leg = item.order_id.rsplit(":", 1)[-1]
        fields = {"symbol": item.symbol, "side": item.side.value, "amount": round(item.amount, 8),
                  "price": item.price, "fee": round(item.fee, 8), "order_id": item.order_id}
        if leg in PROTECTIVE_LEGS:
            self.notify("stop", f"{leg.replace('_', ' ')} hit on {item.symbol}", **fields)
        else:
            self.notify("fill", f"{item.side.value} {item.symbol} filled", **fields)

    # -- delivering ------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            msg = await self._queue.get()
            try:
                for sink in list(self.sinks):
                    await self._deliver(sink, msg)
            finally:
                self._queue.task_done()

    def _delay(self, attempt: int, hint: float | None) -> float:
        base = min(self.config.backoff_max_s, self.config.backoff_initial_s * 2 ** (attempt - 1))
        delay = base * (0.5 + self._rng.random() * 0.5)  # jitter
        return min(self.config.backoff_max_s, max(delay, hint or 0.0))

    async def _deliver(self, sink: Sink, msg: Message) -> None:
        assert self._session is not None
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                await sink.send(self._session, msg)
                self.stats.delivered += 1
                return
            except DeliveryError as exc:
                if not exc.retryable or attempt == self.config.max_attempts:
                    self.stats.failed += 1
                    if self._on_drop is not None:
                        self._on_drop()
                    log.warning("notification_failed", sink=sink.name, kind=msg.kind,
                                attempts=attempt, error=str(exc))
                    return
                self.stats.retries += 1
                delay = self._delay(attempt, exc.retry_after)
                log.info("notification_retry", sink=sink.name, attempt=attempt, delay_s=round(delay, 2),
                         error=str(exc))
                await self._sleep(delay)


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
