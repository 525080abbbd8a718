"""Typed bodies of the REST API: every response is validated against its model before it
leaves, and the OpenAPI document (``bot.api.openapi``) is generated from the same models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- queries ------------------------------------------------------------------------------


class Window(Model):
    since: int | None = Field(None, description="first timestamp, ms since the epoch (inclusive)")
    until: int | None = Field(None, description="end timestamp, ms since the epoch (exclusive)")


class TradesQuery(Window):
    symbol: str | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class SignalsQuery(Window):
    symbol: str | None = None
    strategy: str | None = None
    limit: int = Field(50, ge=1, le=1000)


class EquityQuery(Window):
    max_points: int = Field(2000, ge=2, le=20000)


class DenialsQuery(Model):
    since: int | None = None
    limit: int = Field(50, ge=1, le=1000)


class PnlQuery(Model):
    period: Literal["daily", "monthly"] = "daily"


class CandlesQuery(Window):
    symbol: str | None = Field(None, description="default: the first traded symbol")
    timeframe: str | None = Field(None, description="default: the symbol's traded timeframe")
    limit: int = Field(300, ge=1, le=5000)


class LogsQuery(Model):
    n: int = Field(200, ge=1, le=500)


class ActionsQuery(Model):
    limit: int = Field(50, ge=1, le=1000)


# -- control bodies -----------------------------------------------------------------------


class Reason(Model):
    reason: str = Field(min_length=1, max_length=500, description="why: stored with the action")


class HaltBody(Reason):
    flatten: bool = Field(False, description="also close every open position")


class SymbolBody(Reason):
    symbol: str = Field(min_length=1)


class LoginBody(Model):
    token: str = Field(min_length=1, max_length=4096)


# -- responses ----------------------------------------------------------------------------


class Error(Model):
    error: str


class LoginOut(Model):
    ok: bool


class FeedHealth(Model):
    age_s: float
    stale: bool
    reconnects: int


class ModelHealth(Model):
    age_s: float
    expired: bool
    created_at: str | None = None


class Status(Model):
    status: str = Field(description="ok | degraded | starting | stopping | stopped")
    run_id: str
    mode: str
    executor: str
    trading_state: str
    state_reason: str
    paused: dict[str, str] = Field(description="symbol -> why its new entries are paused")
    symbols: list[str]
    timeframe: str
    feeds: dict[str, FeedHealth]
    models: dict[str, ModelHealth]
    equity: float
    cash: float
    heat: float
    heat_pct: float
    open_positions: int
    candles: int
    last_candle_ts: int | None
    uptime_s: float
    config_generation: int
    last_reload: dict[str, Any]


class PositionOut(Model):
    symbol: str
    amount: float
    avg_price: float
    stop_price: float | None
    take_profit: float | None
    price: float
    unrealized_pnl: float
    paused: bool


class Positions(Model):
    positions: list[PositionOut]


class OpenOrder(Model):
    order_id: str
    symbol: str
    side: str
    leg: str
    order_type: str
    amount: float
    price: float | None
    stop_price: float | None
    filled: float
    status: str
    ts: int


class Orders(Model):
    orders: list[OpenOrder]


class TradeOut(Model):
    trade_id: str
    order_id: str
    symbol: str
    side: str
    leg: str
    amount: float
    price: float
    fee: float
    ts: int
    liquidity: str | None


class Trades(Model):
    total: int
    limit: int
    offset: int
    trades: list[TradeOut]


class Decision(Model):
    intent_id: str
    approved: bool
    check: str | None
    reason: str | None


class SignalOut(Model):
    signal_id: str
    ts: int
    strategy: str
    symbol: str
    timeframe: str
    direction: str
    strength: float
    probability: float | None
    confidence_low: float | None
    confidence_high: float | None
    edge: float | None = Field(description="probability - 0.5 (None without a probability)")
    size_pct: float | None
    risk_level: str
    votes: dict[str, Any]
    attributions: dict[str, Any]
    reason: str
    decision: Decision | None = Field(description="the risk gate's verdict on what it asked; None: no order wanted")


class Signals(Model):
    signals: list[SignalOut]


class EquityPoint(Model):
    ts: int
    equity: float
    cash: float
    exposure: float
    heat: float
    drawdown_pct: float


class Equity(Model):
    points: list[EquityPoint]
    max_drawdown_pct: float


class DenialOut(Model):
    intent_id: str
    symbol: str
    ts: int
    check: str | None
    reason: str | None


class Denials(Model):
    by_check: dict[str, int]
    recent: list[DenialOut]


class PnlRow(Model):
    period: str
    equity: float
    pnl: float
    pnl_pct: float


class Pnl(Model):
    period: str
    rows: list[PnlRow]


class PerformanceRow(Model):
    symbol: str
    fills: int
    volume: float
    fees: float
    realized_pnl: float


class Performance(Model):
    rows: list[PerformanceRow]


class CandleOut(Model):
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class Marker(Model):
    ts: int
    price: float
    kind: Literal["entry", "exit", "stop"]
    side: str
    amount: float


class Candles(Model):
    symbol: str
    timeframe: str
    candles: list[CandleOut]
    markers: list[Marker]
    stop_price: float | None
    take_profit: float | None


class ConfigOut(Model):
    config: dict[str, Any] = Field(description="the running configuration, secrets redacted")


class Logs(Model):
    lines: list[dict[str, Any]]


class ActionOut(Model):
    action: str
    who: str
    why: str
    ts: int
    detail: dict[str, Any] = Field(description="what came of it; symbol for the per-symbol actions")


class Actions(Model):
    actions: list[ActionOut]
