"""Telegram commands: the daemon long-polls ``getUpdates`` (no inbound port) with the
``[notify]`` bot token and answers in the chat that asked.

Only ``[telegram].allowed_chat_ids`` (default: ``notify.telegram_chat_id``) may command; any
other chat is ignored (no answer) and logged. Commands sent while the daemon was down (older
than ``confirm_s`` at start) are not acted on. Control commands go through
``bot.ops.control.Operator`` like the REST API's, stored as ``telegram:<chat id>``.

    /status  /profit [days]  /balance  /trades [n]  /performance
    /halt [why]  /resume [why]  /flatten (then /flatten confirm)  /reload  /help
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from bot.ops.control import ActionRefused
from bot.core.backoff import Backoff

if TYPE_CHECKING:
    from bot.api.routes import CockpitHost
    from bot.config.settings import Settings
    from bot.ops.control import Operator
    from bot.store.read import StoreReader

log = structlog.get_logger(__name__)

MAX_TEXT = 4000  # Telegram's limit is 4096 characters per message
HELP = """neuralbot commands
/status - trading state, positions, equity
/profit [days] - P&L per day (default 7)
/balance - cash, equity, exposure
/trades [n] - last n fills (default 10)
/performance - per symbol: realised P&L, fills, fees
/halt [why] - stop new entries (stops keep working)
/resume [why] - trade again
/flatten - halt and close every position (asks to confirm)
/reload - reload the configuration file
/help - this list"""


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _count(args: list[str], default: int, most: int) -> int:
    try:
        return max(1, min(most, int(args[0]))) if args else default
    except ValueError:
        return default


class TelegramCommands:
    def __init__(self, settings: Settings, host: CockpitHost, reader: StoreReader, operator: Operator) -> None:
        token = settings.notify.telegram_token
        if token is None:
            raise ValueError("telegram.commands needs notify.telegram_token")
        self._url = f"{settings.notify.telegram_base_url.rstrip('/')}/bot{token.get_secret_value()}"
        self.config = settings.telegram
        chat = settings.notify.telegram_chat_id
        self.allowed = set(self.config.allowed_chat_ids) or ({chat} if chat else set())
        self.host = host
        self.reader = reader
        self.operator = operator
        self._confirm: dict[str, float] = {}  # chat id -> monotonic deadline of a /flatten confirmation
        self._started_s = time.time()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._commands: dict[str, Callable[[str, list[str]], Awaitable[str]]] = {
            "status": self.status, "profit": self.profit, "balance": self.balance, "trades": self.trades,
            "performance": self.performance, "halt": self.halt, "resume": self.resume,
            "flatten": self.flatten, "reload": self.reload, "help": self.help, "start": self.help,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.poll_timeout_s + 15)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._task = asyncio.create_task(self._poll(), name="telegram-commands")
        log.info("telegram_commands_started", allowed_chats=len(self.allowed))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, payload: dict[str, Any]) -> Any:
        assert self._session is not None
        async with self._session.post(f"{self._url}/{method}", json=payload) as resp:
            body = await resp.json(content_type=None)
        if not isinstance(body, dict) or not body.get("ok"):
            description = body.get("description") if isinstance(body, dict) else None
            raise RuntimeError(f"telegram {method}: HTTP {resp.status} {description or ''}".strip())
        return body.get("result")

    async def _poll(self) -> None:
        offset: int | None = None
        backoff = Backoff(initial_s=1.0, max_s=60.0)
        while True:
            try:
                updates = await self._call("getUpdates", {"timeout": self.config.poll_timeout_s,
                                                          "allowed_updates": ["message"],
                                                          **({"offset": offset} if offset is not None else {})})
            except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError) as exc:
                delay = backoff.next_delay()
                log.warning("telegram_poll_failed", error=str(exc), retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            for update in updates or []:
                offset = int(update["update_id"]) + 1
                await self.handle(update)

    # -- commands ----------------------------------------------------------------------------

    async def handle(self, update: dict[str, Any]) -> None:
        msg = update.get("message") or {}
        text = str(msg.get("text") or "")
        chat = str((msg.get("chat") or {}).get("id", ""))
        if not text.startswith("/") or not chat:
            return
        if chat not in self.allowed:
            sender = (msg.get("from") or {}).get("username") or (msg.get("from") or {}).get("id")
            log.warning("telegram_command_ignored", chat_id=chat, sender=str(sender), command=text.split()[0][:32])
            return
        name, *args = text[1:].split()
        name = name.split("@", 1)[0].lower()
        if float(msg.get("date") or 0) < self._started_s - self.config.confirm_s:
            reply = f"/{name} was sent while the bot was down: not acted on. Send it again."
        elif name not in self._commands:
            reply = f"unknown command /{name}\n\n{HELP}"
        else:
            try:
                reply = await self._commands[name](chat, args)
            except ActionRefused as exc:
                reply = f"/{name} refused: {exc}"
        try:
            await self._call("sendMessage", {"chat_id": chat, "text": reply[:MAX_TEXT],
                                             "reply_to_message_id": msg.get("message_id"),
                                             "disable_web_page_preview": True})
        except (aiohttp.ClientError, asyncio.TimeoutError, RuntimeError, ValueError) as exc:
            log.warning("telegram_reply_failed", chat_id=chat, command=name, error=str(exc))

    async def status(self, chat: str, args: list[str]) -> str:
        snap = self.host.health_snapshot()
        engine = self.operator.engine
        lines = [f"{snap['mode']} · state {snap['trading_state']}" +
                 (f" ({engine.state_reason})" if engine.state_reason else ""),
                 f"equity {snap['equity']:,.2f} · cash {snap['cash']:,.2f} · heat {snap['heat_pct']:.2f}%"]
        for p in snap["positions"]:
            lines.append(f"{p['symbol']} {p['amount']:.6g} @ {p['avg_price']:,.2f} now {p['price']:,.2f}"
                         f" stop {p['stop_price'] or 0:,.2f} P&L {p['unrealized_pnl']:+,.2f}")
        if not snap["positions"]:
            lines.append("no open position")
        lines += [f"paused {s}: {why}" for s, why in engine.paused.items()]
        return "\n".join(lines)

    async def profit(self, chat: str, args: list[str]) -> str:
        days = _count(args, 7, 365)
        rows = (await self.reader.pnl("daily"))[-days:]
        if not rows:
            return "no equity recorded yet"
        total = sum(r["pnl"] for r in rows)
        lines = [f"P&L over the last {len(rows)} day(s): {total:+,.2f}"]
        lines += [f"{r['period']}  {r['pnl']:+,.2f} ({r['pnl_pct']:+.2f}%)  equity {r['equity']:,.2f}" for r in rows]
        return "\n".join(lines)

    async def balance(self, chat: str, args: list[str]) -> str:
        report = self.operator.engine.portfolio.report()
        exposure = sum(p["amount"] * p["price"] for p in report["positions"])
        return (f"cash {report['cash']:,.2f}\nin positions {exposure:,.2f}\nequity {report['equity']:,.2f}\n"
                f"heat {report['heat']:,.2f} ({report['heat_pct']:.2f}%)")

    async def trades(self, chat: str, args: list[str]) -> str:
        total, rows = await self.reader.trades(limit=_count(args, 10, 50))
        if not rows:
            return "no fills yet"
        lines = [f"last {len(rows)} of {total} fills"]
        lines += [f"{_when(r['ts'])} {r['side']} {r['amount']:.6g} {r['symbol']} @ {r['price']:,.2f} ({r['leg']})"
                  for r in rows]
        return "\n".join(lines)

    async def performance(self, chat: str, args: list[str]) -> str:
        rows = await self.reader.performance()
        if not rows:
            return "no fills yet"
        return "\n".join(f"{r['symbol']}: realised {r['realized_pnl']:+,.2f}, {r['fills']} fills,"
                         f" fees {r['fees']:,.2f}" for r in rows)

    async def halt(self, chat: str, args: list[str]) -> str:
        result = await self.operator.halt(f"telegram:{chat}", " ".join(args) or "telegram /halt")
        return f"halted; {result.detail['cancelled_entries']} open entries cancelled. Stops keep working. /resume to trade again."

    async def resume(self, chat: str, args: list[str]) -> str:
        result = await self.operator.resume(f"telegram:{chat}", " ".join(args) or "telegram /resume")
        return f"trading state {result.detail['state']} (was {result.detail['from']})"

    async def flatten(self, chat: str, args: list[str]) -> str:
        deadline = self._confirm.pop(chat, None)
        if args[:1] == ["confirm"] and deadline is not None and time.monotonic() <= deadline:
            result = await self.operator.halt(f"telegram:{chat}", "telegram /flatten", flatten=True)
            exits = result.detail["exits"]
            return f"halted; closing {', '.join(exits) if exits else 'nothing (no open position)'}."
        self._confirm[chat] = time.monotonic() + self.config.confirm_s
        n = len(self.operator.engine.portfolio.open_positions())
        return (f"This halts trading and closes {n} open position(s) with market orders.\n"
                f"Send /flatten confirm within {self.config.confirm_s:.0f} s to do it.")

    async def reload(self, chat: str, args: list[str]) -> str:
        result = await self.operator.reload(f"telegram:{chat}", "telegram /reload")
        return "configuration reloaded" if result.detail["ok"] else "reload rejected: the running configuration is kept"

    async def help(self, chat: str, args: list[str]) -> str:
        return HELP
