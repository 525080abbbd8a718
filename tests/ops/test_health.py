from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

from bot.core.events import (
    Candle,
    Direction,
    EquitySnapshot,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    OrderType,
    Side,
    Signal,
)
from bot.ops.health import HealthServer, OpsMetrics
from bot.config.ops import HealthConfig


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def candle(ts: int, symbol: str = "BTC/USDT") -> Candle:
    return Candle("binance", symbol, "1h", ts, 100.0, 101.0, 99.0, 100.5, 10.0)


def feed_some(m: OpsMetrics, clock: FakeMonotonic) -> None:
    for i in range(10):
        m.market_event(candle(i * 3_600_000))
        clock.t += 0.5
    m.listener(Signal("ens", "BTC/USDT", "1h", 3_600_000, Direction.LONG, 80.0, probability=0.7,
                      attributions={"rsi_14": 0.4, "ret_1": -0.2}))
    m.listener(OrderSubmitted("o1", "i1", "BTC/USDT", Side.BUY, 0.1, OrderType.MARKET, 100.0, 1))
    m.listener(OrderFilled("o1", "t1", "BTC/USDT", Side.BUY, 0.1, 100.0, 0.01, 2))
    m.listener(OrderDenied("i2", "BTC/USDT", "portfolio_heat", "too hot", 3))
    m.listener(OrderDenied("i3", "BTC/USDT", "portfolio_heat", "too hot", 4))
    m.listener(EquitySnapshot(5, cash=9000.0, equity=10_000.0, exposure=1000.0, heat=250.0))
    m.observe_decision(0.004)
    m.observe_inference("ens", 0.002)
    m.set_reconnects("ohlcv:BTC/USDT:1h", 3)
    m.retrain("kept")
    m.set_state("reducing")


def test_metrics_series_and_values() -> None:
    clock = FakeMonotonic()
    m = OpsMetrics(events_window_s=60.0, monotonic=clock)
    feed_some(m, clock)
    text = m.render().decode()
    assert 'neuralbot_events_total{kind="candle"} 10.0' in text
    assert 'neuralbot_denials_total{check="portfolio_heat"} 2.0' in text
    assert "neuralbot_equity 10000.0" in text
    assert "neuralbot_heat 250.0" in text
    assert "neuralbot_heat_pct 2.5" in text
    assert "neuralbot_candle_to_order_seconds_count 1.0" in text
    assert 'neuralbot_inference_seconds_count{strategy="ens"} 1.0' in text
    assert 'neuralbot_feed_reconnects{feed="ohlcv:BTC/USDT:1h"} 3.0' in text
    assert 'neuralbot_retrains_total{outcome="kept"} 1.0' in text
    assert 'neuralbot_trading_state{state="reducing"} 1.0' in text
    assert 'neuralbot_trading_state{state="active"} 0.0' in text
    # 10 events over 5 s of (fake) uptime
    assert m.events_per_second() == pytest.approx(2.0)
    assert m.feed_ages() == {"ohlcv:BTC/USDT:1h": 0.5}
    assert 'neuralbot_feed_last_message_age_seconds{feed="ohlcv:BTC/USDT:1h"} 0.5' in text


def test_each_daemon_has_its_own_registry() -> None:
    a, b = OpsMetrics(), OpsMetrics()
    a.market_event(candle(0))
    assert b"kind=\"candle\"" in a.render()
    assert b"kind=\"candle\"" not in b.render()


def test_non_loopback_bind_requires_token() -> None:
    with pytest.raises(ValidationError, match="token"):
        HealthConfig(host="0.0.0.0")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        HealthConfig(host="0.0.0.0", token=SecretStr("s3cret"))
    HealthConfig(host="0.0.0.0", token=SecretStr("s3cret-s3cret-s3cret"))
    HealthConfig(host="::1")


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        body = await r.text()
        return r.status, r.headers.get("Content-Type", ""), body


async def test_server_serves_health_and_metrics(tmp_path) -> None:
    m = OpsMetrics()
    m.market_event(candle(0))
    provider_calls = []

    def provider() -> dict[str, Any]:
        provider_calls.append(1)
        return {"status": "ok", "trading_state": "active", "feeds": m.feed_ages(), "positions": []}

    port_file = tmp_path / "port"
    server = HealthServer(HealthConfig(port=0, port_file=port_file), m, provider)
    port = await server.start()
    try:
        assert port_file.read_text().strip() == f"127.0.0.1:{port}"
        status, ctype, body = await _get(f"http://127.0.0.1:{port}/health")
        assert status == 200 and ctype.startswith("application/json")
        assert '"trading_state": "active"' in body and "ohlcv:BTC/USDT:1h" in body
        status, ctype, body = await _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        assert 'neuralbot_events_total{kind="candle"} 1.0' in body
    finally:
        await server.stop()
    assert not port_file.exists()
    assert provider_calls


async def test_unhealthy_status_is_503() -> None:
    server = HealthServer(HealthConfig(port=0), OpsMetrics(), lambda: {"status": "stopping"})
    port = await server.start()
    try:
        status, _, _ = await _get(f"http://127.0.0.1:{port}/health")
        assert status == 503
    finally:
        await server.stop()


async def test_token_is_enforced_when_configured() -> None:
    cfg = HealthConfig(port=0, token=SecretStr("tok-123"))
    server = HealthServer(cfg, OpsMetrics(), lambda: {"status": "ok"})
    port = await server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        assert (await _get(f"{base}/health"))[0] == 401
        assert (await _get(f"{base}/metrics", {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await _get(f"{base}/health", {"Authorization": "Bearer tok-123"}))[0] == 200
        assert (await _get(f"{base}/metrics?token=tok-123"))[0] == 200
    finally:
        await server.stop()
