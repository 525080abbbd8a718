"""The cockpit's HTTP server (aiohttp, on the daemon's own event loop): ``/api/v1`` and ``/ui``.

aiohttp rather than FastAPI + uvicorn: the daemon already serves ``/health`` with aiohttp on
its single asyncio loop, and a second server framework would bring its own loop management
(uvicorn) and dependency tree for the same job. The typing FastAPI would add comes from the
pydantic models in ``bot.api.schemas``: queries and bodies are validated with them and every
response is validated against its declared model before it leaves, and the OpenAPI document
is generated from the same declarations (``bot.api.openapi``).

Every JSON body and stream message is scrubbed of the configured secrets' values as a last
line of defence (they are redacted at the source too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from bot.api import schemas
from bot.api.auth import SESSION_COOKIE, Authenticator, cors_origin
from bot.api.openapi import PREFIX, openapi_document
from bot.api.routes import ROUTES, ApiContext, Route
from bot.config.cockpit import ApiConfig
from bot.ops.control import ActionRefused
from bot.ops.health import serve
from bot.config.ops import is_loopback

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("static")
UI_FILES = {"index.html": "text/html", "app.js": "text/javascript", "charts.js": "text/javascript",
            "style.css": "text/css", "favicon.svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
       " base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PUBLIC = (PREFIX + "/openapi.json", PREFIX + "/login")
REDACTED = "**********"
MIN_SCRUB = 6  # shorter values would mangle the JSON itself (and are no secrets worth the name)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class ApiServer:
    def __init__(self, config: ApiConfig, ctx: ApiContext, secrets: Callable[[], list[str]]) -> None:
        if not is_loopback(config.host) and config.token is None:
            raise ValueError(f"refusing to serve the API on {config.host} without a token")
        self.config = config
        self.ctx = ctx
        self.auth = Authenticator(config)
        self._secrets = secrets
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port: int | None = None

    # -- bodies ------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        for value in sorted({v for v in self._secrets() if len(v) >= MIN_SCRUB}, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text

    def _json(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        text = self.scrub(json.dumps(body, default=str, sort_keys=True))
        return web.Response(text=text, status=status, content_type="application/json", headers=headers)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        return self._json({"error": message}, status, headers)

    # -- middleware --------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        client = request.remote or "?"
        origin = cors_origin(self.config, request.headers.get("Origin"))
        if request.method == "OPTIONS":
            if origin is None:
                return self._error(405, "CORS is not enabled for this origin")
            resp: web.StreamResponse = web.Response(status=204)
        elif request.path.startswith("/api/"):
            resp = await self._api_request(request, handler, client)
        else:
            resp = await handler(request)
        if origin is not None:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST"
            resp.headers["Vary"] = "Origin"
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    async def _api_request(self, request: web.Request, handler: Any, client: str) -> web.StreamResponse:
        locked = self.auth.throttle.locked_for(client)
        if locked > 0:
            return self._error(429, "too many failed logins from this address",
                               {"Retry-After": str(int(locked) + 1)})
        if self.auth.required and request.path not in PUBLIC:
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                if not self.auth.token_ok(header[7:]):
                    return self._refuse(client, "wrong token")
            elif not self.auth.session_ok(request.cookies.get(SESSION_COOKIE)):
                return self._error(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
        try:
            resp: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:
            return self._error(exc.status, exc.reason)
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def _refuse(self, client: str, why: str) -> web.Response:
        self.auth.throttle.failed(client)
        log.warning("api_auth_failed", client=client, reason=why)
        return self._error(401, why, {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    # -- handlers ----------------------------------------------------------------------------

    def _endpoint(self, route: Route) -> Any:
        async def handle(request: web.Request) -> web.Response:
            who = f"api@{request.remote or '?'}"
            try:
                query = route.query.model_validate(dict(request.query)) if route.query else None
                body = route.body.model_validate(await self._body(request)) if route.body else None
            except ValidationError as exc:
                return self._error(400, validation_message(exc))
            except ValueError as exc:
                return self._error(400, str(exc))
            try:
                data = await route.handler(self.ctx, query, body, who)
            except ActionRefused as exc:
                return self._error(409, str(exc))
            except LookupError as exc:
                return self._error(404, str(exc.args[0] if exc.args else exc))
            return self._json(route.response.model_validate(data).model_dump(mode="json"))

        handle.__name__ = route.handler.__name__
        return handle

    @staticmethod
    async def _body(request: web.Request) -> Any:
        if request.content_type != "application/json":  # also keeps cross-site forms out
            raise ValueError("expected a JSON body (Content-Type: application/json)")
        try:
            return await request.json()
        except ValueError:
            raise ValueError("the body is not valid JSON") from None

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = schemas.LoginBody.model_validate(await self._body(request))
        except (ValidationError, ValueError) as exc:
            return self._error(400, validation_message(exc) if isinstance(exc, ValidationError) else str(exc))
        if not self.auth.required:
            return self._json({"ok": True})
        client = request.remote or "?"
        if not self.auth.token_ok(body.token):
            return self._refuse(client, "wrong token")
        self.auth.throttle.succeeded(client)
        resp = self._json({"ok": True})
        resp.set_cookie(SESSION_COOKIE, self.auth.new_session(), httponly=True, samesite="Strict", path="/")
        return resp

    async def _openapi(self, request: web.Request) -> web.Response:
        return self._json(openapi_document())

    def status_event(self) -> dict[str, Any]:
        engine = self.ctx.host.engine
        snap = self.ctx.host.health_snapshot()
        return {"status": snap["status"], "trading_state": snap["trading_state"],
                "state_reason": engine.state_reason if engine is not None else "",
                "paused": dict(engine.paused) if engine is not None else {},
                "equity": snap["equity"], "candles": snap["candles"]}

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        queue = self.ctx.hub.connect()
        closing = asyncio.create_task(self._closing.wait())
        try:
            await resp.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, closing}, timeout=self.config.stream_heartbeat_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    message = getter.result()
                else:
                    getter.cancel()
                    if closing in done:
                        break
                    message = f"event: status\ndata: {json.dumps(self.status_event(), default=str)}\n\n"
                await resp.write(self.scrub(message).encode())
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            closing.cancel()
            self.ctx.hub.disconnect(queue)
        return resp

    async def _home(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    async def _ui(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name") or "index.html"
        if name not in UI_FILES:
            raise web.HTTPNotFound()
        headers = {"Content-Type": UI_FILES[name], "Cache-Control": "no-cache"}
        if name == "index.html":
            headers["Content-Security-Policy"] = CSP
        return web.Response(body=(STATIC / name).read_bytes(), headers=headers)

    # -- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        for route in ROUTES:
            app.router.add_route(route.method, PREFIX + route.path, self._endpoint(route))
        app.router.add_get(PREFIX + "/openapi.json", self._openapi)
        app.router.add_post(PREFIX + "/login", self._login)
        app.router.add_get(PREFIX + "/stream", self._stream)
        app.router.add_get("/", self._home)
        app.router.add_get("/ui", self._home)
        app.router.add_get("/ui/", self._ui)
        app.router.add_get("/ui/{name}", self._ui)
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        self.port = await serve(self._runner, self.config.host, self.config.port, self.config.port_file)
        log.info("api_listening", host=self.config.host, port=self.port, ui=f"http://{self.config.host}:{self.port}/ui/",
                 auth="token" if self.auth.required else "none (loopback)")
        return self.port

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None
        if self.config.port_file is not None:
            self.config.port_file.unlink(missing_ok=True)
