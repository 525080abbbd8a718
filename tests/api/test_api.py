"""The REST API's contract against a real paper daemon on the loopback exchange: every endpoint
answers with its declared schema and is in the OpenAPI document; bad queries and bodies are
refused with a reason; off loopback the daemon refuses to start without a sound token; with a
token every request needs it, wrong tokens are refused and rate-limited, and no secret appears
in any body; CORS only when configured."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.api.openapi import PREFIX, openapi_document
from bot.api.routes import ROUTES
from bot.app.demo_live import LoopbackExchange, replay_settings
from tests.cockpit_daemon import START_MS, CockpitDaemon, rows
from tests.paths import REPO

TOKEN = "cockpit-token-0123456789abcdef"
SECRETS = {"NEURALBOT_API__TOKEN": TOKEN, "NEURALBOT_API_KEY": "key-ABCDEFGH12345",
           "NEURALBOT_API_SECRET": "secret-ZYXWVUT98765", "NEURALBOT_NOTIFY__TELEGRAM_TOKEN": "123456:tg-SECRETSECRET",
           "NEURALBOT_NOTIFY__TELEGRAM_CHAT_ID": "42", "NEURALBOT_NOTIFY__TELEGRAM_BASE_URL": "http://127.0.0.1:9"}
GETS = [r for r in ROUTES if r.method == "GET"]


@pytest.fixture
def exchange(data_dir: Path) -> Iterator[LoopbackExchange]:
    with LoopbackExchange(replay_settings(data_dir, START_MS, 100.0)) as ex:
        yield ex


@pytest.fixture
def daemon(write_config, tmp_path: Path) -> Iterator[CockpitDaemon]:
    d = CockpitDaemon(write_config, tmp_path)
    yield d
    d.kill()


def test_openapi_document_is_valid_and_lists_every_route() -> None:
    from openapi_spec_validator import validate

    doc = openapi_document()
    validate(doc)
    for route in ROUTES:
        op = doc["paths"][PREFIX + route.path][route.method.lower()]
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(route.response.__name__)
        if route.body is not None:
            assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(route.body.__name__)


def test_every_endpoint_on_loopback(daemon: CockpitDaemon, exchange: LoopbackExchange) -> None:
    daemon.start(exchange)
    daemon.wait_for("a few fills", lambda: len(rows(daemon.db, "SELECT * FROM fills")) >= 2)
    served = daemon.json(PREFIX + "/openapi.json")
    assert served == json.loads(json.dumps(openapi_document()))
    for route in GETS:  # no token on loopback; each body is what its model declares
        body = daemon.json(PREFIX + route.path)
        route.response.model_validate(body)
    status = daemon.json(PREFIX + "/status")
    assert status["mode"] == "paper" and status["executor"] == "paper_book" and status["symbols"] == ["BTC/USDT"]
    assert status["feeds"] and all(f["age_s"] >= 0 for f in status["feeds"].values())
    trades = daemon.json(PREFIX + "/trades?limit=1&symbol=BTC/USDT")
    assert trades["total"] >= 2 and len(trades["trades"]) == 1
    assert daemon.json(PREFIX + "/trades?symbol=ETH/USDT")["total"] == 0
    first = rows(daemon.db, "SELECT ts FROM fills ORDER BY ts LIMIT 1")[0][0]
    assert daemon.json(PREFIX + f"/trades?until={first}")["total"] == 0
    assert daemon.json(PREFIX + "/equity?max_points=3")["points"].__len__() <= 3
    sig = daemon.json(PREFIX + "/signals?limit=50")["signals"]
    assert sig and any(s["decision"] is not None and s["decision"]["approved"] for s in sig)
    candles = daemon.json(PREFIX + "/candles?limit=50")
    assert candles["candles"] and {m["kind"] for m in candles["markers"]} <= {"entry", "exit", "stop"}

    # refused with a reason, nothing changed
    for path, fragment in (("/trades?limit=0", "limit"), ("/trades?bogus=1", "bogus"),
                           ("/pnl?period=weekly", "period"), ("/candles?symbol=DOGE/USDT", "not traded")):
        code, _, text = daemon.request(PREFIX + path)
        assert code in (400, 404) and fragment in json.loads(text)["error"], (path, text)
    code, _, text = daemon.request(PREFIX + "/control/halt", {"flatten": True})
    assert code == 400 and "reason" in text
    code, _, text = daemon.request(PREFIX + "/control/pause", {"symbol": "DOGE/USDT", "reason": "x"})
    assert code == 409 and "not traded" in text
    code, _, text = daemon.request(PREFIX + "/control/halt", body=None,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code == 405 or code == 400
    assert rows(daemon.db, "SELECT * FROM operator_actions") == []

    # control actions, each stored with who and why
    for path, body in (("/control/pause", {"symbol": "BTC/USDT", "reason": "p"}),
                       ("/control/unpause", {"symbol": "BTC/USDT", "reason": "u"}),
                       ("/control/reload", {"reason": "r"}),
                       ("/control/halt", {"reason": "h", "flatten": True}),
                       ("/control/resume", {"reason": "go"})):
        out = daemon.json(PREFIX + path, body)
        assert out["who"] == "api@127.0.0.1" and out["why"] == body["reason"]
    assert daemon.json(PREFIX + "/control/actions")["actions"][0]["action"] == "resume"
    assert [r[0] for r in rows(daemon.db, "SELECT action FROM operator_actions ORDER BY id")] == [
        "pause", "unpause", "reload", "halt", "resume"]
    assert daemon.json(PREFIX + "/status")["last_reload"]["ok"] is True

    # no CORS unless configured
    code, headers, _ = daemon.request(PREFIX + "/status", headers={"Origin": "http://evil.example"})
    assert code == 200 and "Access-Control-Allow-Origin" not in headers
    code, _ = daemon.stop()
    assert code == 0


def test_token_required_refused_rate_limited_and_no_secret_in_any_body(
        daemon: CockpitDaemon, exchange: LoopbackExchange) -> None:
    daemon.start(exchange, api="max_failed_logins = 3\ncors_origins = [\"http://ops.example\"]", env=SECRETS)
    daemon.wait_for("a fill", lambda: len(rows(daemon.db, "SELECT * FROM fills")) >= 1)
    secrets = [v for k, v in SECRETS.items() if "TOKEN" in k or "KEY" in k or "SECRET" in k]
    for route in GETS:
        code, _, text = daemon.request(PREFIX + route.path)
        assert code == 401, route.path
        code, _, text = daemon.request(PREFIX + route.path, token=TOKEN)
        assert code == 200, (route.path, text)
        assert not any(s in text for s in secrets), route.path
    config = daemon.json(PREFIX + "/config", token=TOKEN)["config"]
    assert config["api"]["token"] == config["notify"]["telegram_token"] == config["api_key"] == "**********"
    code, _, text = daemon.request(PREFIX + "/control/halt", {"reason": "x"})
    assert code == 401 and rows(daemon.db, "SELECT * FROM trading_state") == []
    # the dashboard's files hold no data and stay public; its data does not
    code, _, html = daemon.request("/ui/")
    assert code == 200 and "neuralbot" in html
    # CORS only for the configured origin
    _, headers, _ = daemon.request(PREFIX + "/status", token=TOKEN, headers={"Origin": "http://ops.example"})
    assert headers.get("Access-Control-Allow-Origin") == "http://ops.example"
    _, headers, _ = daemon.request(PREFIX + "/status", token=TOKEN, headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers
    # a session cookie for the dashboard, from the token
    code, headers, _ = daemon.request(PREFIX + "/login", {"token": TOKEN})
    cookie = headers["Set-Cookie"].split(";")[0]
    assert code == 200 and "HttpOnly" in headers["Set-Cookie"] and TOKEN not in headers["Set-Cookie"]
    code, _, _ = daemon.request(PREFIX + "/status", headers={"Cookie": cookie})
    assert code == 200
    # wrong tokens: refused, and the third locks this address out, right token or not
    for _ in range(3):
        code, _, _ = daemon.request(PREFIX + "/status", token=TOKEN[:-1] + "X")
        assert code == 401
    code, headers, _ = daemon.request(PREFIX + "/status", token=TOKEN)
    assert code == 429 and int(headers["Retry-After"]) > 0
    code, _ = daemon.stop()
    assert code == 0


@pytest.mark.parametrize(("api", "env", "fragment"), [
    ('host = "0.0.0.0"', {}, "api.host"),
    ("", {"NEURALBOT_API__TOKEN": "abc123xyz"}, "shorter than 16"),
    ("", {"NEURALBOT_API__TOKEN": "                    "}, "empty or whitespace"),
    ("", {"NEURALBOT_API__TOKEN": "has a space in it 123456"}, "whitespace"),
], ids=["off-loopback-without-token", "short-token", "blank-token", "spaced-token"])
def test_refuses_to_start_without_a_sound_token(write_config, api: str, env: dict[str, str],
                                                fragment: str) -> None:
    import os

    config = write_config(f"[api]\n{api}\n")
    proc = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert not any(v.strip() and v in proc.stderr for v in env.values())  # the bad token is not echoed
