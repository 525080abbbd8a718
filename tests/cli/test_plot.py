"""``neuralbot plot``: a self-contained HTML chart of a real backtest's store, checked as data and
opened in the machine's Chromium (offline, no console error, every fill drawn)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path


from tests.paths import REPO
from tests.integration.test_cockpit_browser import CHROMIUM


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_plot_of_a_backtest(write_config, tmp_path: Path) -> None:
    config = write_config("[risk]\nmin_strength = 0.0\n")
    bt = cli("backtest", "--config", str(config), "--from", "2021-01-01", "--to", "2021-03-01", "--json",
             cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    portfolio = json.loads(bt.stdout)["portfolio"]
    out = tmp_path / "plot.html"
    proc = cli("plot", "--config", str(config), "--symbol", "BTC/USDT", "--portfolio", portfolio,
               "--from", "2021-01-01", "--to", "2021-03-01", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "<script src" not in html and "<link" not in html  # one file: nothing to fetch
    data = json.loads(re.search(r"const DATA = (\{.*?\});\n", html).group(1).replace("<\\/", "</"))  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "bot.sqlite") as conn:
        fills = conn.execute("SELECT ts, side FROM fills WHERE portfolio = ? ORDER BY ts", (portfolio,)).fetchall()
        signals = conn.execute("SELECT COUNT(*) FROM signals WHERE portfolio = ? AND ts < ?",
                               (portfolio, 1_614_556_800_000)).fetchone()[0]  # before 2021-03-01
    assert fills and [(m["ts"], m["side"]) for m in data["markers"]] == fills
    assert len(data["signals"]) == signals
    assert len(data["candles"]) > 58 * 24 and all(1_609_459_200_000 <= c["ts"] < 1_614_556_800_000
                                                  for c in data["candles"])
    assert {m["kind"] for m in data["markers"]} >= {"entry"}

    if CHROMIUM is not None:
        from playwright.sync_api import sync_playwright

        errors: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                           else route.continue_())  # offline: anything but the file itself fails
                page.goto(out.as_uri())
                assert page.get_attribute("#price", "data-markers") == str(len(fills))
                assert int(page.get_attribute("#price", "data-points") or 0) == len(data["candles"])
                assert int(page.get_attribute("#equity", "data-points") or 0) == len(data["equity"])
                page.mouse.move(600, 200)
                page.mouse.wheel(0, -300)  # zoom: the views stay linked and nothing throws
            finally:
                browser.close()
        assert errors == []


def test_plot_without_a_store_says_so(write_config, tmp_path: Path) -> None:
    proc = cli("plot", "--config", str(write_config()), "--symbol", "BTC/USDT", cwd=tmp_path)
    assert proc.returncode == 1 and "no store at" in proc.stderr and "Traceback" not in proc.stderr
