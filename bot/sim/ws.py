"""Websocket side of the loopback exchange: connections, subscriptions, fault-injected pushes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import structlog
from aiohttp import WSMsgType, web

from bot.sim.faults import FaultCounters, every
from bot.sim.settings import FaultSettings
from bot.sim.stream_names import normalise_stream

log = structlog.get_logger(__name__)

_CLOSE = object()


class Connection:
    """One client websocket: an ordered send queue drained by a writer task."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        faults: Callable[[], FaultSettings],
        counters: FaultCounters,
        combined: bool,
    ) -> None:
        self.ws = ws
        self.combined = combined
        self.streams: set[str] = set()
        self._faults = faults
        self._counters = counters
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._sent = 0
        self._depth_seen = 0
        self.closed = False

    def push(self, stream: str, envelope: str, data: str, is_depth: bool = False) -> None:
        """Queue one stream message; ``envelope`` is the combined form, ``data`` the raw one."""
        if self.closed:
            return
        faults = self._faults()
        if is_depth:
            self._depth_seen += 1
            if every(faults.skip_depth_every_n, self._depth_seen):
                self._counters.depth_skipped += 1
                return
        self._sent += 1
        text = envelope if self.combined else data
        if every(faults.malformed_every_n, self._sent):
            self._counters.malformed += 1
            text = text[: max(1, len(text) // 2)] + "}"
        self._queue.put_nowait(text)
        if every(faults.drop_every_n_messages, self._sent):
            self._counters.drops += 1
            self.close_soon()

    def reply(self, payload: dict) -> None:
        if not self.closed:
            self._queue.put_nowait(json.dumps(payload, separators=(",", ":")))

    def close_soon(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(_CLOSE)

    async def writer(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    break
                delay = self._faults().delay_ms
                if delay > 0:
                    await asyncio.sleep(delay / 1000.0)
                await self.ws.send_str(item)  # type: ignore[arg-type]
        except (ConnectionError, RuntimeError) as exc:
            log.debug("sim.ws.send_failed", error=str(exc))
        finally:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close()


class Hub:
    """Which connection listens to which stream; fans pushes out."""

    def __init__(self) -> None:
        self.by_stream: dict[str, set[Connection]] = {}
        # validates a stream name and starts its producer; returns why it is refused, or None
        self.on_subscribe: Callable[[str], str | None] = lambda stream: None

    def subscribe(self, conn: Connection, stream: str) -> str | None:
        refused = self.on_subscribe(stream)
        if refused is None:
            conn.streams.add(stream)
            self.by_stream.setdefault(stream, set()).add(conn)
        return refused

    def unsubscribe(self, conn: Connection, stream: str) -> None:
        conn.streams.discard(stream)
        self.by_stream.get(stream, set()).discard(conn)

    def drop(self, conn: Connection) -> None:
        for stream in list(conn.streams):
            self.unsubscribe(conn, stream)

    def has_listeners(self, stream: str) -> bool:
        return bool(self.by_stream.get(stream))

    def publish(self, stream: str, data: str, is_depth: bool = False) -> None:
        conns = self.by_stream.get(stream)
        if not conns:
            return
        envelope = f'{{"stream":"{stream}","data":{data}}}'
        for conn in list(conns):
            conn.push(stream, envelope, data, is_depth)

    def publish_obj(self, stream: str, payload: dict | list, is_depth: bool = False) -> None:
        if self.has_listeners(stream):
            self.publish(stream, json.dumps(payload, separators=(",", ":")), is_depth)


async def serve_stream_socket(
    request: web.Request,
    hub: Hub,
    faults: Callable[[], FaultSettings],
    counters: FaultCounters,
    monotonic_sleep_drop: Callable[[Connection], asyncio.Task[None] | None],
) -> web.WebSocketResponse:
    """``/ws``, ``/ws/<stream>`` and ``/stream?streams=a/b`` endpoints."""
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    combined = request.path.startswith("/stream")
    conn = Connection(ws, faults, counters, combined)
    writer = asyncio.create_task(conn.writer())
    dropper = monotonic_sleep_drop(conn)
    initial: list[str] = []
    tail = request.match_info.get("tail", "")
    if tail and not tail.isdigit():
        initial.append(tail)
    if "streams" in request.query:
        initial.extend(s for s in request.query["streams"].split("/") if s)
    for stream in initial:
        refused = hub.subscribe(conn, normalise_stream(stream))
        if refused is not None:
            log.info("sim.ws.stream_refused", stream=stream, reason=refused)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            handle_control(conn, hub, msg.data)
    finally:
        hub.drop(conn)
        conn.close_soon()
        if dropper is not None:
            dropper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return ws


def handle_control(conn: Connection, hub: Hub, text: str) -> None:
    """SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS; a bad request is answered, never fatal."""
    try:
        req = json.loads(text)
        method, req_id = req["method"], req.get("id")
    except (ValueError, KeyError, TypeError):
        conn.reply({"error": {"code": 3, "msg": "Invalid JSON: expected an object with a "
                              "'method'"}, "id": None})
        return
    params = req.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            conn.reply({"error": {"code": 2, "msg": "Invalid request: 'params' must be a list of "
                                  "stream names"}, "id": req_id})
            return
        names = [normalise_stream(p) for p in params]
        for name in names:
            refused = hub.subscribe(conn, name) if method == "SUBSCRIBE" else None
            if method == "UNSUBSCRIBE":
                hub.unsubscribe(conn, name)
            if refused is not None:
                conn.reply({"error": {"code": 2, "msg": refused}, "id": req_id})
                return
        conn.reply({"result": None, "id": req_id})
    elif method == "LIST_SUBSCRIPTIONS":
        conn.reply({"result": sorted(conn.streams), "id": req_id})
    else:
        conn.reply({"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"},
                    "id": req_id})
