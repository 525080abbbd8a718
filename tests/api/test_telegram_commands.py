"""Telegram commands against a loopback Telegram-Bot-API-compatible server (aiohttp, own thread):
a real paper daemon long-polls getUpdates; the allowed chat commands it (state changes stored,
through the Operator), any other chat is ignored (no answer, no change) and logged."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app.demo_live import LoopbackExchange, replay_settings
from tests.cockpit_daemon import START_MS, CockpitDaemon, rows

BOT_TOKEN = "4242:telegram-test-token"
ALLOWED, STRANGER = "42", "666"


class FakeTelegram:
    """getUpdates (long polling, offsets) and sendMessage, as the Bot API answers them."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.polls = 0
        self._next_id = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.url = ""

    def _main(self) -> None:
        async def serve() -> None:
            self._loop, self._arrived = asyncio.get_running_loop(), asyncio.Event()
            app = web.Application()
            app.router.add_post(f"/bot{BOT_TOKEN}/getUpdates", self._get_updates)
            app.router.add_post(f"/bot{BOT_TOKEN}/sendMessage", self._send_message)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
            self._ready.set()
            await asyncio.Event().wait()

        asyncio.run(serve())

    def __enter__(self) -> FakeTelegram:
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)

    async def _get_updates(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.polls += 1
        offset = int(body.get("offset", 0))
        self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed ones are gone
        if not self.updates:
            assert self._arrived is not None
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(float(body.get("timeout", 0)), 2.0))
            except TimeoutError:
                pass
        return web.json_response({"ok": True, "result": self.updates})

    async def _send_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sent.append(body)
        return web.json_response({"ok": True, "result": {"message_id": len(self.sent), "chat": {"id": body["chat_id"]}}})

    def say(self, chat: str, text: str) -> int:
        """A user in ``chat`` sends ``text``; returns its message id."""
        assert self._loop is not None and self._arrived is not None
        mid = self._next_id
        self._next_id += 1
        update = {"update_id": 1000 + mid, "message": {"message_id": mid, "date": int(time.time()), "text": text,
                                                         "chat": {"id": int(chat), "type": "private"},
                                                         "from": {"id": int(chat), "username": f"user{chat}"}}}

        def push() -> None:
            self.updates.append(update)
            self._arrived.set()  # type: ignore[union-attr]

        self._loop.call_soon_threadsafe(push)
        return mid

    def reply(self, daemon: CockpitDaemon, mid: int) -> str:
        found = daemon.wait_for(f"the reply to message {mid}",
                                lambda: [m for m in list(self.sent) if m.get("reply_to_message_id") == mid])
        return str(found[0]["text"])


@pytest.fixture
def setup(write_config, tmp_path: Path, data_dir: Path) -> Iterator[tuple[CockpitDaemon, FakeTelegram]]:
    with LoopbackExchange(replay_settings(data_dir, START_MS, 150.0)) as ex, FakeTelegram() as tg:
        d = CockpitDaemon(write_config, tmp_path)
        try:
            d.start(ex, extra=(
                f'[notify]\ntelegram_base_url = "{tg.url}"\ntelegram_chat_id = "{ALLOWED}"\nevents = ["state"]\n'
                f'[telegram]\ncommands = true\nallowed_chat_ids = ["{ALLOWED}"]\npoll_timeout_s = 2\n'),
                env={"NEURALBOT_NOTIFY__TELEGRAM_TOKEN": BOT_TOKEN})
            yield d, tg
        finally:
            d.kill()


def test_commands_from_the_allowed_chat_and_a_stranger(setup: tuple[CockpitDaemon, FakeTelegram]) -> None:
    daemon, tg = setup
    daemon.wait_for("a fill", lambda: rows(daemon.db, "SELECT * FROM fills"))

    # a stranger is ignored: no answer, no change; then the allowed chat's command is answered
    tg.say(STRANGER, "/halt hostile")
    assert "state active" in tg.reply(daemon, tg.say(ALLOWED, "/status"))
    assert not [m for m in tg.sent if str(m["chat_id"]) == STRANGER]
    assert rows(daemon.db, "SELECT * FROM trading_state") == []

    assert "/flatten" in tg.reply(daemon, tg.say(ALLOWED, "/help"))
    assert "fills" in tg.reply(daemon, tg.say(ALLOWED, "/trades 2"))
    assert "equity" in tg.reply(daemon, tg.say(ALLOWED, "/balance"))
    assert "P&L over the last" in tg.reply(daemon, tg.say(ALLOWED, "/profit 3"))
    assert "BTC/USDT" in tg.reply(daemon, tg.say(ALLOWED, "/performance"))

    assert "halted" in tg.reply(daemon, tg.say(ALLOWED, "/halt maintenance"))
    assert rows(daemon.db, "SELECT state FROM trading_state")[0][0] == "halted"
    assert "was halted" in tg.reply(daemon, tg.say(ALLOWED, "/resume done"))
    assert rows(daemon.db, "SELECT state FROM trading_state")[0][0] == "active"

    # /flatten asks first; only the confirmation acts
    assert "confirm" in tg.reply(daemon, tg.say(ALLOWED, "/flatten"))
    assert rows(daemon.db, "SELECT state FROM trading_state")[0][0] == "active"
    assert "closing" in tg.reply(daemon, tg.say(ALLOWED, "/flatten confirm"))
    assert rows(daemon.db, "SELECT state FROM trading_state")[0][0] == "halted"
    assert "reloaded" in tg.reply(daemon, tg.say(ALLOWED, "/reload"))

    actions = rows(daemon.db, "SELECT action, who, why, detail_json FROM operator_actions ORDER BY id")
    assert [(a, w) for a, w, _, _ in actions] == [("halt", "telegram:42"), ("resume", "telegram:42"),
                                                 ("halt", "telegram:42"), ("reload", "telegram:42")]
    assert actions[0][2] == "maintenance" and json.loads(actions[2][3])["flatten"] is True
    # and each action was notified (kind "state") to the configured chat, beside the replies
    notified = [m["text"] for m in tg.sent if "reply_to_message_id" not in m]
    assert any(t.startswith("[state] operator halt") and "who: telegram:42" in t for t in notified), notified
    code, err = daemon.stop()
    assert code == 0
    ignored = [json.loads(line) for line in err.splitlines() if "telegram_command_ignored" in line]
    assert ignored and ignored[0]["chat_id"] == STRANGER and ignored[0]["command"] == "/halt"
    assert BOT_TOKEN not in err  # the bot token is in every URL; never in a log line
