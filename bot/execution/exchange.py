"""Sandbox / live execution through a ccxt client: orders that are never duplicated.

For every approved intent:
1. a deterministic client order id per (signal, symbol, leg) (``orders.client_order_id``);
   an id already in the store is never sent again, only looked up;
2. the order record is committed to SQLite (state ``new``) before the request;
3. the answer moves the state machine; fills come with their trade ids and are
   deduplicated by them (in memory and by the fills table's key);
4. on a timeout or network error the order is looked up by client order id before
   anything is retried; it is re-sent (same id) only once the exchange says it does
   not exist. A 429 backs off first. Rejections (InsufficientFunds, InvalidOrder...)
   become stored denials. If the outcome stays unknown the order stays ``submitted``
   and is resolved by polling (or by reconciliation after a restart).

Binance charges buy commission in the base asset: such a fill is recorded net of
the fee (amount - fee) with the fee converted to quote, so positions equal balances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import ccxt.async_support as ccxt
import structlog

from bot.core.clock import Clock
from bot.core.events import (
    MarketEvent,
    OrderDenied,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    OrderType,
    Side,
)
from bot.core.orders import (
    OrderClosed,
    OrderRecord,
    OrderState,
    Out,
    client_order_id,
    from_ccxt,
    stays_at_cancel,
)
from bot.execution.retry import Outcome, RetryPolicy, classify, denial_check
from bot.execution.stop_orders import ExchangeStops
from bot.store.store import Store
from risk.market import MarketRules

log = structlog.get_logger(__name__)

LIVE = tuple(s.value for s in OrderState if not s.terminal)


class ExchangeExecutor:
    def __init__(
        self,
        client: Any,
        store: Store,
        clock: Clock,
        retry: RetryPolicy | None = None,
        poll_interval_ms: int = 1_000,
        prefix: str = "nb",
        exchange_stops: bool = False,
    ) -> None:
        self.client = client
        self.store = store
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.poll_interval_ms = poll_interval_ms
        self.prefix = prefix
        self.orders: dict[str, OrderRecord] = {}  # client order id -> record
        self.fill_ids: set[str] = set()
        self.rules: dict[str, MarketRules] = {}
        self._last_poll = 0
        # exchange-side protective stops (opt-in): the protection this executor declares
        self.protection: ExchangeStops | None = ExchangeStops(self) if exchange_stops else None

    # -- start-up --------------------------------------------------------------------

    async def start(self, symbols: Iterable[str]) -> dict[str, MarketRules]:
        """Load markets (trading rules) and what the store already knows."""
        await self.call(self.client.load_markets)
        for symbol in symbols:
            m = self.client.market(symbol)
            lim, prec = m.get("limits", {}), m.get("precision", {})
            self.rules[symbol] = MarketRules(
                symbol,
                amount_step=prec.get("amount"),
                price_tick=prec.get("price"),
                min_amount=(lim.get("amount") or {}).get("min"),
                min_notional=(lim.get("cost") or {}).get("min"),
            )
        self.fill_ids = await self.store.fill_ids()
        for row in await self.store.load_exchange_orders():
            rec = record_from_row(row)
            self.orders[rec.client_order_id] = rec
        return self.rules

    def fees(self, symbol: str) -> tuple[float, float]:
        m = self.client.market(symbol)
        return float(m.get("maker") or 0.0), float(m.get("taker") or 0.0)

    # -- port ------------------------------------------------------------------------

    async def submit(self, intent: OrderIntent, now_ms: int) -> Out:
        cid = client_order_id(intent.signal_id, intent.symbol, intent.leg, self.prefix)
        known = self.orders.get(cid)
        if known is not None:  # never a second request for the same id: look it up instead
            log.warning("order_already_known", cid=cid, state=known.state.value)
            return [] if known.state.terminal else await self.resolve(known)
        rec = OrderRecord.from_intent(intent, cid, now_ms)
        await self._save(rec)  # durable before the request leaves
        return await self._place(rec)

    async def on_market(self, event: MarketEvent) -> Out:
        now = self.clock.now_ms()
        if now - self._last_poll < self.poll_interval_ms or not self.live_orders():
            return []
        self._last_poll = now
        out: Out = []
        for rec in self.live_orders():
            out += await self.resolve(rec)
        return out

    def live_orders(self) -> list[OrderRecord]:
        return [r for r in self.orders.values() if not r.state.terminal]

    # -- placing ---------------------------------------------------------------------

    async def _place(self, rec: OrderRecord) -> Out:
        amount = self.client.amount_to_precision(rec.symbol, rec.amount)
        price = None
        if rec.order_type is OrderType.LIMIT and rec.price is not None:
            price = self.client.price_to_precision(rec.symbol, rec.price)
        params: dict[str, Any] = {"newClientOrderId": rec.client_order_id}
        if rec.protective and rec.stop_price is not None:  # limit + stopPrice: STOP_LOSS_LIMIT
            params["stopPrice"] = self.client.price_to_precision(rec.symbol, rec.stop_price)
        for attempt in range(self.retry.max_attempts):
            try:
                order = await self.client.create_order(
                    rec.symbol, rec.order_type.value, rec.side.value, amount, price, params,
                )
                return await self._adopt(rec, order)
            except ccxt.BaseError as exc:
                outcome = classify(exc)
                if outcome is Outcome.REJECTED:
                    return await self._reject(rec, exc)
                log.warning("order_request_failed", cid=rec.client_order_id, outcome=outcome.value,
                            attempt=attempt, error=str(exc)[:200])
                rec = await self._save(rec.moved(OrderState.SUBMITTED, self.clock.now_ms()))
                await self.retry.wait(attempt, outcome)
            try:
                found = await self._lookup(rec)
            except OutcomeUnknown:
                log.error("order_outcome_unknown", cid=rec.client_order_id, symbol=rec.symbol)
                return []  # stays submitted: polling or reconciliation resolves it, never a resend
            if found is not None:
                return await self._adopt(rec, found)
            # the exchange says the order does not exist: safe to send again, same id
        log.error("order_outcome_unknown", cid=rec.client_order_id, symbol=rec.symbol)
        return []

    async def _lookup(self, rec: OrderRecord) -> dict[str, Any] | None:
        """The exchange's view of ``rec`` by client order id; ``None`` if it does not exist.

        While the exchange cannot be asked, backs off and asks again; if it never
        answers, the record is left ``submitted`` (its state re-read by the caller).
        """
        for attempt in range(self.retry.max_attempts):
            try:
                return await self.client.fetch_order(
                    None, rec.symbol, {"origClientOrderId": rec.client_order_id}
                )
            except ccxt.OrderNotFound:
                return None
            except ccxt.BaseError as exc:
                outcome = classify(exc)
                log.warning("order_lookup_failed", cid=rec.client_order_id, attempt=attempt,
                            error=str(exc)[:200])
                await self.retry.wait(attempt, outcome if outcome is not Outcome.REJECTED
                                      else Outcome.AMBIGUOUS)
        self.orders[rec.client_order_id] = rec
        raise OutcomeUnknown(rec.client_order_id)

    async def resolve(self, rec: OrderRecord) -> Out:
        """Bring one live order up to date with the exchange (polling, reconciliation)."""
        try:
            found = await self._lookup(rec)
        except OutcomeUnknown:
            return []
        if found is not None:
            return await self._adopt(rec, found)
        if rec.state is OrderState.NEW:  # written, never reached the exchange: not re-sent
            rec = await self._save(rec.moved(OrderState.EXPIRED, self.clock.now_ms(),
                                             error="never reached the exchange"))
            return [OrderClosed(rec.client_order_id, rec.intent_id, rec.symbol, rec.state, 0.0,
                                self.clock.now_ms(), rec.error)]
        log.error("order_vanished", cid=rec.client_order_id, state=rec.state.value)
        return []

    async def _reject(self, rec: OrderRecord, exc: BaseException) -> Out:
        now = self.clock.now_ms()
        rec = await self._save(rec.moved(OrderState.REJECTED, now, error=str(exc)[:500]))
        log.warning("order_rejected", cid=rec.client_order_id, error=str(exc)[:200])
        denial = OrderDenied(rec.intent_id, rec.symbol, denial_check(exc), str(exc)[:500], now)
        return [denial, OrderClosed(rec.client_order_id, rec.intent_id, rec.symbol, rec.state,
                                    0.0, now, denial.reason)]

    # -- adopting the exchange's answer ------------------------------------------------

    async def _adopt(self, rec: OrderRecord, order: dict[str, Any]) -> Out:
        now = self.clock.now_ms()
        out: Out = []
        filled = float(order.get("filled") or 0.0)
        state = from_ccxt(order.get("status"), filled) or OrderState.ACCEPTED
        if not rec.exchange_order_id:
            out.append(OrderSubmitted(
                rec.client_order_id, rec.intent_id, rec.symbol, rec.side, rec.amount,
                rec.order_type, rec.price, now, exchange_order_id=str(order.get("id") or ""),
            ))
        trades = order.get("trades") or []
        if filled > sum(float(t.get("amount") or 0) for t in trades) + 1e-12:
            trades = await self.order_trades(rec.symbol, str(order["id"]), order.get("timestamp"))
        out += self.fills_from(rec, trades, int(order.get("timestamp") or now))
        if rec.state is not state or not rec.exchange_order_id or rec.filled != filled:
            rec = await self._save(rec.moved(state, now, exchange_order_id=str(order.get("id") or ""),
                                             filled=filled))
        if state.terminal:
            out.append(OrderClosed(rec.client_order_id, rec.intent_id, rec.symbol, state, filled, now))
        return out

    async def order_trades(self, symbol: str, order_id: str, since: int | None) -> list[dict[str, Any]]:
        trades = await self.call(self.client.fetch_my_trades, symbol, since)
        return [t for t in trades if str(t.get("order")) == order_id]

    def fills_from(self, rec: OrderRecord, trades: list[dict[str, Any]], ts: int) -> Out:
        out: Out = []
        for t in trades:
            fill = to_fill(self.client.market(rec.symbol), rec.client_order_id, rec.side, t, ts)
            if fill.trade_id in self.fill_ids:
                continue
            self.fill_ids.add(fill.trade_id)
            out.append(fill)
        return out

    async def _save(self, rec: OrderRecord) -> OrderRecord:
        self.orders[rec.client_order_id] = rec
        await self.store.save_exchange_order(record_row(rec))
        return rec

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A read-only request, retried with backoff on throttling and network errors."""
        for attempt in range(self.retry.max_attempts):
            try:
                return await fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                outcome = classify(exc)
                if outcome is Outcome.REJECTED or attempt == self.retry.max_attempts - 1:
                    raise
                log.warning("request_retry", fn=getattr(fn, "__name__", "?"), attempt=attempt,
                            error=str(exc)[:200])
                await self.retry.wait(attempt, outcome)
        raise AssertionError("unreachable")

    # -- operator actions -----------------------------------------------------------------

    async def cancel_all(self, now_ms: int, symbols: Sequence[str], *, keep_protective: bool,
                         entries_only: bool = False, reason: str = "canceled") -> tuple[int, Out]:
        """Cancel our open orders on ``symbols`` as the exchange lists them
        (``ExecutionPort.cancel_all``). Returns how many were cancelled and their resolved outcomes."""
        n = 0
        out: Out = []
        for symbol in symbols:
            for order in await self.call(self.client.fetch_open_orders, symbol):
                cid = str(order.get("clientOrderId") or "")
                rec = self.orders.get(cid)
                side = Side.BUY if order.get("side") == "buy" else Side.SELL
                if not cid.startswith(self.prefix) or stays_at_cancel(
                        rec.leg if rec is not None else "", side, keep_protective=keep_protective,
                        entries_only=entries_only):
                    continue
                await self.call(self.client.cancel_order, order["id"], symbol)
                n += 1
                if rec is not None:
                    out += await self.resolve(rec)
        log.info("orders_cancelled", count=n, reason=reason, at=now_ms)
        return n, out


class OutcomeUnknown(RuntimeError):
    """The exchange could not be asked about an order; it stays ``submitted``."""


def to_fill(market: dict[str, Any], order_id: str, side: Side, t: dict[str, Any], now: int) -> OrderFilled:
    price, amount = float(t["price"]), float(t["amount"])
    fee = t.get("fee") or {}
    fee_cost, fee_ccy = float(fee.get("cost") or 0.0), fee.get("currency")
    if fee_ccy == market["base"]:  # commission taken from what was bought
        amount, fee_quote = amount - fee_cost, fee_cost * price
    elif fee_ccy in (market["quote"], None):
        fee_quote = fee_cost
    else:  # e.g. BNB: paid outside this market; not in quote terms
        log.warning("fee_in_other_asset", currency=fee_ccy, cost=fee_cost)
        fee_quote = 0.0
    return OrderFilled(
        order_id, f"{market['id']}-{t['id']}", market["symbol"], side, amount, price, fee_quote,
        int(t.get("timestamp") or now), "maker" if t.get("takerOrMaker") == "maker" else "taker",
    )


def record_row(rec: OrderRecord) -> dict[str, Any]:
    return {
        "client_order_id": rec.client_order_id, "intent_id": rec.intent_id,
        "signal_id": rec.signal_id, "symbol": rec.symbol, "side": rec.side.value, "leg": rec.leg,
        "order_type": rec.order_type.value, "amount": rec.amount, "price": rec.price,
        "reduce_only": int(rec.reduce_only), "stop_price": rec.stop_price,
        "take_profit": rec.take_profit, "state": rec.state.value,
        "exchange_order_id": rec.exchange_order_id, "filled": rec.filled, "error": rec.error,
        "created_ms": rec.created_ms, "updated_ms": rec.updated_ms,
    }


def record_from_row(row: dict[str, Any]) -> OrderRecord:
    return OrderRecord(
        row["client_order_id"], row["intent_id"], row["signal_id"], row["symbol"],
        Side(row["side"]), row["leg"], OrderType(row["order_type"]), row["amount"], row["price"],
        bool(row["reduce_only"]), row["stop_price"], row["take_profit"], OrderState(row["state"]),
        row["created_ms"], row["updated_ms"], row["exchange_order_id"] or "", row["filled"] or 0.0,
        row["error"] or "",
    )
