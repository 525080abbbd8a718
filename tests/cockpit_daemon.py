"""A real paper daemon on the loopback exchange (``test_paper_live``'s configuration) with the
cockpit on an ephemeral port (shared by the API, browser and Telegram tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.paths import REPO
from tests.integration.test_paper_live import CONFIG as PAPER_LIVE
from tests.integration.test_paper_live import START_MS, WAIT_S, rows

__all__ = ["START_MS", "WAIT_S", "CockpitDaemon", "rows"]

API = """
[api]
port = 0
port_file = "{port_file}"
{api}
{extra}
"""


class CockpitDaemon:
    def __init__(self, write_config: Callable[..., Path], tmp: Path) -> None:
        self.write_config = write_config
        self.tmp = tmp
        self.port_file = tmp / "api.port"
        self.db = tmp / "bot.sqlite"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, exchange: Any, *, api: str = "", extra: str = "",
              env: dict[str, str] | None = None, seed_bars: int = 0) -> None:
        """Start the daemon; ``seed_bars``: store that many recorded candles before the exchange's
        start first (the daemon warms up from them, as after a restart)."""
        paper = PAPER_LIVE.format(mode="paper", http=exchange.http_url, ws=exchange.ws_url)
        config = self.write_config(paper + API.format(port_file=self.port_file, api=api, extra=extra))
        if seed_bars:
            import asyncio

            from bot.config.load import load_settings
            from bot.app.demo_live import seed_history

            asyncio.run(seed_history(load_settings(config), "BTC/USDT", "1h", START_MS, seed_bars))
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "NEURALBOT_LOGGING__FORMAT": "json", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config), "--json"],
                                     cwd=self.tmp, env=full_env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.wait_for("the API port", lambda: self.port_file.exists() and self.port_file.read_text().strip())

    @property
    def base(self) -> str:
        return "http://" + self.port_file.read_text().strip()

    def wait_for(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                                     f"{self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def request(self, path: str, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {**({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, data=data, headers=hdrs,
                                     method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def json(self, path: str, body: Any = None, token: str | None = None) -> Any:
        status, _, text = self.request(path, body, token)
        assert status == 200, (path, status, text)
        return json.loads(text)

    def stop(self) -> tuple[int, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=WAIT_S)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
