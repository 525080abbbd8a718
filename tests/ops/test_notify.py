from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.core.events import OrderFilled, Side
from bot.ops.notify import Notifier
from bot.config.ops import NotifyConfig


@dataclass
class Receiver:
    """A loopback HTTP server recording webhook and Telegram calls."""

    url: str = ""
    webhook: list[dict[str, Any]] = field(default_factory=list)
    telegram: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_first: int = 0  # answer this many requests with 503
    rate_limit_first: int = 0  # answer this many requests with 429 + retry_after
    attempts: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def _fault(self) -> web.Response | None:
        self.attempts += 1
        if self.rate_limit_first > 0:
            self.rate_limit_first -= 1
            return web.json_response({"ok": False, "error_code": 429, "parameters": {"retry_after": 0.01}},
                                     status=429)
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        return None

    async def hook(self, request: web.Request) -> web.Response:
        fault = self._fault()
        if fault is not None:
            return fault
        self.webhook.append(await request.json())
        self.arrived.set()
        return web.json_response({"ok": True})

    async def tg(self, request: web.Request) -> web.Response:
        fault = self._fault()
        if fault is not None:
            return fault
        self.telegram.append((request.match_info["token"], await request.json()))
        self.arrived.set()
        return web.json_response({"ok": True, "result": {"message_id": len(self.telegram)}})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.hook)
    app.router.add_post("/bot{token}/sendMessage", rec.tg)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def config(rec: Receiver, **kw: Any) -> NotifyConfig:
    base = dict(webhook_url=f"{rec.url}/hook", telegram_base_url=rec.url,
                telegram_token=SecretStr("123:ABC"), telegram_chat_id="42",
                backoff_initial_s=0.01, backoff_max_s=0.05)
    base.update(kw)
    return NotifyConfig(**base)  # type: ignore[arg-type]


def fill(order_id: str) -> OrderFilled:
    return OrderFilled(order_id, f"{order_id}#1", "BTC/USDT", Side.SELL, 0.5, 30_000.0, 15.0, 1_700_000_000_000)


async def test_fill_and_stop_reach_webhook_and_telegram(receiver: Receiver) -> None:
    n = Notifier(config(receiver))
    await n.start()
    n.listener(fill("ma:BTC/USDT:1h:1:entry"))
    n.listener(fill("1700000000000:BTC/USDT:stop"))
    n.notify("state", "daemon started", mode="paper")
    n.notify("error", "feed failed", error="boom")
    await n.close()
    kinds = [m["kind"] for m in receiver.webhook]
    assert kinds == ["fill", "stop", "state", "error"]
    stop = receiver.webhook[1]
    assert stop["title"] == "stop hit on BTC/USDT" and stop["fields"]["price"] == 30_000.0
    assert stop["source"] == "neuralbot" and stop["ts"] > 0
    assert len(receiver.telegram) == 4
    token, body = receiver.telegram[1]
    assert token == "123:ABC" and body["chat_id"] == "42"
    assert body["text"].startswith("[stop] stop hit on BTC/USDT")
    assert n.stats.delivered == 8 and n.stats.failed == 0


async def test_transient_failures_are_retried_with_backoff(receiver: Receiver) -> None:
    receiver.fail_first = 2
    receiver.rate_limit_first = 1
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
        await asyncio.sleep(0)

    n = Notifier(config(receiver, telegram_token=None, telegram_chat_id=None), sleep=sleep, seed=1)
    await n.start()
    n.notify("error", "something broke")
    await n.close()
    assert len(receiver.webhook) == 1 and receiver.attempts == 4
    assert n.stats.retries == 3 and n.stats.delivered == 1
    # exponential: 0.01, 0.02, 0.04 (jittered to 50-100 %), 429's retry_after honoured as a floor
    assert slept[0] >= 0.01 and slept[1] <= 0.02 and slept[2] <= 0.04 and slept[2] >= 0.02


async def test_gives_up_after_max_attempts_and_counts(receiver: Receiver) -> None:
    receiver.fail_first = 100
    drops: list[int] = []
    n = Notifier(config(receiver, telegram_token=None, telegram_chat_id=None, max_attempts=3),
                 on_drop=lambda: drops.append(1))
    await n.start()
    n.notify("error", "x")
    await n.close()
    assert receiver.attempts == 3 and n.stats.failed == 1 and drops == [1]


async def test_notify_never_blocks_and_bounded_queue_drops(receiver: Receiver) -> None:
    n = Notifier(config(receiver, telegram_token=None, telegram_chat_id=None, queue_size=3))
    # not started: nothing drains the queue
    results = [n.notify("state", f"m{i}") for i in range(5)]
    assert results == [True, True, True, False, False]
    assert n.stats.dropped_full == 2
    await n.start()
    await n.close()
    assert [m["title"] for m in receiver.webhook] == ["m0", "m1", "m2"]


async def test_filtered_kinds_and_no_sinks(receiver: Receiver) -> None:
    n = Notifier(config(receiver, events=("error",), telegram_token=None, telegram_chat_id=None))
    assert n.notify("fill", "ignored") is False
    assert Notifier(NotifyConfig()).notify("error", "no sink configured") is False


def test_telegram_needs_token_and_chat() -> None:
    with pytest.raises(ValueError, match="telegram"):
        NotifyConfig(telegram_token=SecretStr("x"))


async def test_a_disabled_strategy_is_notified_once(receiver: Receiver) -> None:
    from bot.core.events import StrategyFailed

    n = Notifier(config(receiver))
    await n.start()
    for i in (1, 2, 3):
        n.listener(StrategyFailed("ens", "BTC/USDT", i, "evaluate", "ValueError: nan", i, i == 3))
    await n.close()
    assert [(m["kind"], m["title"]) for m in receiver.webhook] == [
        ("error", "strategy ens disabled after 3 failures in a row")]
