"""The operator's cockpit over one running daemon: the REST API with the dashboard
(``[api]``) and Telegram commands (``[telegram]``), both over the same ``Operator``.

The daemon builds one ``Cockpit`` after its Engine is wired and restored, and stops it
before it shuts down. Nothing here trades by itself: reads come from the Engine and a
read-only store connection, control actions go through ``bot.ops.control.Operator``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from bot.api.routes import ApiContext, CockpitHost
from bot.api.stream import StreamHub
from bot.ops.control import ActionResult, Operator
from bot.store.read import StoreReader

if TYPE_CHECKING:
    from bot.api.server import ApiServer
    from bot.api.telegram import TelegramCommands
    from bot.config.settings import Settings



def secret_values(settings: Settings) -> list[str]:
    """Every configured secret's value (responses are scrubbed of them)."""
    found = [settings.api_key, settings.api_secret, settings.health.token, settings.notify.telegram_token,
             settings.api.token]
    return [s.get_secret_value() for s in found if s is not None]


class Cockpit:
    def __init__(self, host: CockpitHost, operator: Operator) -> None:
        self.host = host
        self.operator = operator
        self.hub = StreamHub()
        self.reader: StoreReader | None = None
        self.api: ApiServer | None = None
        self.telegram: TelegramCommands | None = None

    def on_action(self, result: ActionResult) -> None:
        self.hub.publish("action", result.as_dict())

    async def start(self) -> None:
        settings = self.host.settings
        engine = self.operator.engine
        engine.subscribe(self.hub.listener)
        self.reader = await StoreReader.open(settings.store.path, settings.store.portfolio)
        if settings.api.enabled:
            # aiohttp server: only when [api] is enabled
            from bot.api.server import ApiServer

            ctx = ApiContext(self.host, self.reader, self.operator, self.hub)
            self.api = ApiServer(settings.api, ctx, lambda: secret_values(self.host.settings))
            await self.api.start()
        if settings.telegram.commands:
            # only when [telegram] commands are enabled
            from bot.api.telegram import TelegramCommands

            self.telegram = TelegramCommands(settings, self.host, self.reader, self.operator)
            await self.telegram.start()

    async def stop(self) -> None:
        if self.telegram is not None:
            await self.telegram.stop()
        if self.api is not None:
            await self.api.stop()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await self.reader.close()
