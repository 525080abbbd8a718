"""The REST API's routes, declared once with their types: ``ROUTES`` drives both the aiohttp
router (``bot.api.server``) and the OpenAPI document (``bot.api.openapi``).

Each handler takes the ``ApiContext``, the validated query and body models and the caller
(``who``), and returns plain data that the server validates against the route's response
model. Reads come from the Engine (positions, state) and the read-only store connection;
control actions go through ``bot.ops.control.Operator``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from bot.api import schemas as s
from bot.core.events import PROTECTIVE_LEGS
from bot.config.logging_setup import recent_logs

if TYPE_CHECKING:
    from bot.api.stream import StreamHub
    from bot.config.settings import Settings
    from bot.ops.control import Operator
    from bot.engine.engine import Engine
    from bot.store.read import StoreReader


class CockpitHost(Protocol):
    """What the daemon offers the cockpit (``bot.app.daemon.Daemon`` is one)."""

    settings: Settings
    engine: Engine | None

    @property
    def symbols(self) -> list[str]: ...

    def series_timeframe(self, symbol: str) -> str: ...

    def health_snapshot(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class ApiContext:
    host: CockpitHost
    reader: StoreReader
    operator: Operator
    hub: StreamHub

    @property
    def engine(self) -> Engine:
        assert self.host.engine is not None
        return self.host.engine


Handler = Callable[[ApiContext, Any, Any, str], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str  # under /api/v1
    summary: str
    handler: Handler
    response: type[BaseModel]
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    tag: str = "read"


# -- read ---------------------------------------------------------------------------------


async def status(ctx: ApiContext, q: None, b: None, who: str) -> dict[str, Any]:
    snap = ctx.host.health_snapshot()
    engine = ctx.engine
    return {
        **{k: snap[k] for k in ("status", "run_id", "mode", "trading_state", "equity", "cash", "heat",
                                "heat_pct", "candles", "last_candle_ts", "uptime_s", "config_generation",
                                "last_reload", "feeds", "models")},
        "executor": snap.get("executor", ""), "state_reason": engine.state_reason, "paused": dict(engine.paused),
        "symbols": ctx.host.symbols, "timeframe": ctx.host.series_timeframe(ctx.host.symbols[0]),
        "open_positions": len(snap["positions"]),
    }


async def positions(ctx: ApiContext, q: None, b: None, who: str) -> dict[str, Any]:
    paused = ctx.engine.paused
    return {"positions": [{**p, "paused": p["symbol"] in paused}
                          for p in ctx.engine.portfolio.report()["positions"]]}


async def orders(ctx: ApiContext, q: None, b: None, who: str) -> dict[str, Any]:
    return {"orders": await ctx.reader.open_orders()}


async def trades(ctx: ApiContext, q: s.TradesQuery, b: None, who: str) -> dict[str, Any]:
    total, rows = await ctx.reader.trades(q.symbol, q.since, q.until, q.limit, q.offset)
    return {"total": total, "limit": q.limit, "offset": q.offset, "trades": rows}


async def signals(ctx: ApiContext, q: s.SignalsQuery, b: None, who: str) -> dict[str, Any]:
    return {"signals": await ctx.reader.signals(q.symbol, q.strategy, q.since, q.until, q.limit)}


async def equity(ctx: ApiContext, q: s.EquityQuery, b: None, who: str) -> dict[str, Any]:
    points = await ctx.reader.equity(q.since, q.until, q.max_points)
    return {"points": points, "max_drawdown_pct": min((p["drawdown_pct"] for p in points), default=0.0)}


async def denials(ctx: ApiContext, q: s.DenialsQuery, b: None, who: str) -> dict[str, Any]:
    return await ctx.reader.denials(q.since, q.limit)


async def pnl(ctx: ApiContext, q: s.PnlQuery, b: None, who: str) -> dict[str, Any]:
    return {"period": q.period, "rows": await ctx.reader.pnl(q.period)}


async def performance(ctx: ApiContext, q: None, b: None, who: str) -> dict[str, Any]:
    return {"rows": await ctx.reader.performance()}


async def candles(ctx: ApiContext, q: s.CandlesQuery, b: None, who: str) -> dict[str, Any]:
    symbol = q.symbol or ctx.host.symbols[0]
    if symbol not in ctx.host.symbols:
        raise LookupError(f"{symbol!r} is not traded here; traded: {', '.join(ctx.host.symbols)}")
    tf = q.timeframe or ctx.host.series_timeframe(symbol)
    bars = await ctx.reader.candles(ctx.host.settings.exchange.name, symbol, tf, q.since, q.until, q.limit)
    since = bars[0].ts if bars else q.since
    _, fills = await ctx.reader.trades(symbol, since, q.until, limit=1000)
    markers = [{"ts": f["ts"], "price": f["price"], "side": f["side"], "amount": f["amount"],
                "kind": "entry" if f["side"] == "buy" else ("stop" if f["leg"] in PROTECTIVE_LEGS else "exit")}
               for f in reversed(fills)]
    pos = ctx.engine.portfolio.position(symbol)
    return {"symbol": symbol, "timeframe": tf, "markers": markers,
            "candles": [{k: getattr(c, k) for k in ("ts", "open", "high", "low", "close", "volume")} for c in bars],
            "stop_price": pos.stop_price if pos.is_open else None,
            "take_profit": pos.take_profit if pos.is_open else None}


async def config(ctx: ApiContext, q: None, b: None, who: str) -> dict[str, Any]:
    return {"config": ctx.host.settings.redacted()}


async def logs(ctx: ApiContext, q: s.LogsQuery, b: None, who: str) -> dict[str, Any]:
    return {"lines": recent_logs(q.n)}


async def actions(ctx: ApiContext, q: s.ActionsQuery, b: None, who: str) -> dict[str, Any]:
    return {"actions": await ctx.reader.operator_actions(q.limit)}


# -- control ------------------------------------------------------------------------------


async def halt(ctx: ApiContext, q: None, b: s.HaltBody, who: str) -> dict[str, Any]:
    return (await ctx.operator.halt(who, b.reason, b.flatten)).as_dict()


async def resume(ctx: ApiContext, q: None, b: s.Reason, who: str) -> dict[str, Any]:
    return (await ctx.operator.resume(who, b.reason)).as_dict()


async def pause(ctx: ApiContext, q: None, b: s.SymbolBody, who: str) -> dict[str, Any]:
    return (await ctx.operator.pause(b.symbol, who, b.reason)).as_dict()


async def unpause(ctx: ApiContext, q: None, b: s.SymbolBody, who: str) -> dict[str, Any]:
    return (await ctx.operator.pause(b.symbol, who, b.reason, paused=False)).as_dict()


async def exit_position(ctx: ApiContext, q: None, b: s.SymbolBody, who: str) -> dict[str, Any]:
    return (await ctx.operator.exit_position(b.symbol, who, b.reason)).as_dict()


async def reload(ctx: ApiContext, q: None, b: s.Reason, who: str) -> dict[str, Any]:
    return (await ctx.operator.reload(who, b.reason)).as_dict()


ROUTES: tuple[Route, ...] = (
    Route("GET", "/status", "Mode, trading state and reason, paused symbols, feeds' and models' ages",
          status, s.Status),
    Route("GET", "/positions", "Open positions with their stops and unrealised P&L", positions, s.Positions),
    Route("GET", "/orders", "Open orders", orders, s.Orders),
    Route("GET", "/trades", "Fills, newest first, paged, filtered by symbol and time", trades, s.Trades,
          s.TradesQuery),
    Route("GET", "/signals", "Signals with votes, strength, CI, edge, attributions and the gate's verdict",
          signals, s.Signals, s.SignalsQuery),
    Route("GET", "/equity", "Equity and drawdown series", equity, s.Equity, s.EquityQuery),
    Route("GET", "/denials", "Risk-gate denials by check, and the latest", denials, s.Denials, s.DenialsQuery),
    Route("GET", "/pnl", "Daily or monthly P&L", pnl, s.Pnl, s.PnlQuery),
    Route("GET", "/performance", "Per symbol: fills, volume, fees, realised P&L", performance, s.Performance),
    Route("GET", "/candles", "Stored candles of one symbol with entries, exits and stops", candles, s.Candles,
          s.CandlesQuery),
    Route("GET", "/config", "The running configuration, secrets redacted", config, s.ConfigOut),
    Route("GET", "/logs", "The last log lines", logs, s.Logs, s.LogsQuery),
    Route("GET", "/control/actions", "Operator actions, newest first", actions, s.Actions, s.ActionsQuery),
    Route("POST", "/control/halt", "Halt: no new entries, open entries cancelled; optionally flatten",
          halt, s.ActionOut, body=s.HaltBody, tag="control"),
    Route("POST", "/control/resume", "Resume trading (ACTIVE)", resume, s.ActionOut, body=s.Reason, tag="control"),
    Route("POST", "/control/pause", "Pause new entries on one symbol", pause, s.ActionOut, body=s.SymbolBody,
          tag="control"),
    Route("POST", "/control/unpause", "Allow new entries on one symbol again", unpause, s.ActionOut,
          body=s.SymbolBody, tag="control"),
    Route("POST", "/control/exit", "Force-exit one position through the risk gate", exit_position, s.ActionOut,
          body=s.SymbolBody, tag="control"),
    Route("POST", "/control/reload", "Reload and validate the configuration file", reload, s.ActionOut,
          body=s.Reason, tag="control"),
)
