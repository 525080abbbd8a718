"""Where the Engine's parts send what happened: the fact sink, then every listener.

It counts what was queued since the last flush, so the Engine can flush in batches
(``EngineSettings.flush_every``, written behind the replay) or at once (``durable``).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core.events import Fact, OrderDenied, Signal
from bot.core.ports import FactSink

Listener = Callable[[Fact | Signal], None]


class Recorder:
    def __init__(self, sink: FactSink) -> None:
        self.sink = sink
        self._listeners: list[Listener] = []
        self.since_flush = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, item: Fact | Signal) -> None:
        """Store ``item`` (queued) and tell every listener."""
        self.sink.record(item)
        self.since_flush += 1
        for listener in self._listeners:
            listener(item)

    def tell(self, denial: OrderDenied) -> None:
        """Tell the listeners of a gate denial (the sink stored it with the decision)."""
        for listener in self._listeners:
            listener(denial)

    async def flush(self) -> None:
        self.since_flush = 0
        await self.sink.flush()

    async def flush_behind(self) -> None:
        """Start the sink's write of what is queued; the next call into the sink waits for it."""
        self.since_flush = 0
        await self.sink.flush_behind()
