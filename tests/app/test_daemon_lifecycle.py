"""A real ``neuralbot run`` process: one owner per store and portfolio, prompt exits on fatal errors."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.app.test_daemon import WAIT_S, Daemon, wait_for


@pytest.fixture
def daemons(write_config: Callable[..., Path], tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


def finish(proc: subprocess.Popen[str], limit_s: float = WAIT_S) -> tuple[int, str]:
    """The exit code and stderr of ``proc``; a process still running after ``limit_s`` fails the test."""
    try:
        _, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the daemon hung: still running after {limit_s:.0f} s\n{err[-2000:]}") from None
    return proc.returncode, err


def test_a_second_daemon_on_the_same_store_is_refused_and_a_killed_one_does_not_block(
        write_config: Callable[..., Path], tmp_path: Path, daemons: list[Daemon]) -> None:
    first, second = Daemon(write_config, tmp_path), Daemon(write_config, tmp_path)
    second.port_file = tmp_path / "second.port"
    daemons += [first, second]
    first.start(first.config(speed=20))
    wait_for("first daemon trading", lambda: first.health()["candles"] >= 5, first.proc)

    second.start_nowait(second.config(speed=20))
    rc, err = finish(second.proc)  # type: ignore[arg-type]
    assert rc == 2, err
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "already runs" in lines[0] and f"pid {first.proc.pid}" in lines[0], err  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # the second wrote nothing
    assert first.proc.poll() is None and first.health()["status"] in ("ok", "degraded")  # type: ignore[union-attr]

    # kill -9 leaves no lock behind: the next start owns the store
    first.signal(signal.SIGKILL)
    first.proc.wait()  # type: ignore[union-attr]
    third = Daemon(write_config, tmp_path)
    daemons.append(third)
    third.start(third.config(speed=20))
    wait_for("restarted daemon trading", lambda: third.health()["status"] in ("ok", "degraded"), third.proc)
    third.signal(signal.SIGTERM)
    rc, _, err = third.wait()
    assert rc == 0, err


def _future_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")


def _corrupt(db: Path) -> None:
    db.write_bytes(b"this is not an SQLite database, it was overwritten by accident\n" * 64)


def _not_null_on_persist(db: Path) -> None:
    """Every stored equity snapshot trips a real NOT NULL constraint (as a broken row would)."""
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE IF NOT EXISTS broken (x INTEGER NOT NULL);"
            "CREATE TRIGGER equity_breaks AFTER INSERT ON equity BEGIN INSERT INTO broken VALUES (NULL); END;")


@pytest.mark.parametrize(("damage", "expected_rc", "says"), [
    (_future_schema, 2, "newer than this program"),
    (_corrupt, 2, "not an SQLite database"),
    (_not_null_on_persist, 1, "NOT NULL constraint failed"),
])
def test_a_fatal_store_error_exits_non_zero_promptly(
        write_config: Callable[..., Path], tmp_path: Path, daemons: list[Daemon],
        damage: Callable[[Path], None], expected_rc: int, says: str) -> None:
    d = Daemon(write_config, tmp_path)
    daemons.append(d)
    db = tmp_path / "bot.sqlite"
    if damage is _not_null_on_persist:  # a valid store first, then the broken trigger
        d.start_nowait(d.config(speed=0, end="2021-01-03"))
        assert d.wait()[0] == 0
    damage(db)
    t0 = time.monotonic()
    d.start_nowait(d.config(speed=5))  # months of bars: only the error may end it
    rc, err = finish(d.proc)  # type: ignore[arg-type]
    assert rc == expected_rc, err
    assert says in err, err
    assert "Traceback" not in err or expected_rc == 1, err
    assert time.monotonic() - t0 < WAIT_S


def test_sighup_applies_new_limits_and_keeps_halt_polling_and_breaker_persistence(
        write_config: Callable[..., Path], tmp_path: Path, daemons: list[Daemon]) -> None:
    d = Daemon(write_config, tmp_path)
    daemons.append(d)
    config = d.config(speed=25, min_strength=0.0)
    d.start(config)
    wait_for("approved entries", lambda: rows(tmp_path, "SELECT COUNT(*) FROM risk_decisions"
                                                        " WHERE approved = 1")[0][0] >= 2, d.proc)
    config.write_text(config.read_text().replace("min_strength = 0.0", "min_strength = 99.5"))
    d.signal(signal.SIGHUP)
    h = wait_for("reload", lambda: (h := d.health())["last_reload"].get("ok") and h, d.proc)
    reloaded_ms = h["last_reload"]["ms"]
    breakers_before = rows(tmp_path, "SELECT ts FROM breaker_state")[0][0]
    before = h["candles"]
    wait_for("bars after the reload", lambda: d.health()["candles"] >= before + 60, d.proc)
    # the new limit denies what the old one let through (the clock is market time: compare by row id)
    last_id = rows(tmp_path, "SELECT MAX(id) FROM risk_decisions")[0][0]
    wait_for("decisions after the reload", lambda: rows(
        tmp_path, f"SELECT COUNT(*) FROM risk_decisions WHERE id > {last_id}")[0][0] >= 3, d.proc)
    after = rows(tmp_path, f"SELECT approved, check_name, intent_json FROM risk_decisions WHERE id > {last_id}")
    entries = [(r[0], r[1], json.loads(r[2] or "{}")) for r in after]
    entries = [(ok, check, i["strength"]) for ok, check, i in entries if i.get("leg", "entry") == "entry"]
    assert all(strength >= 99.5 for ok, _, strength in entries if ok), entries
    assert any(not ok and check == "min_strength" for ok, check, _ in entries), entries
    # breakers still persisted: their row keeps moving with market time
    assert rows(tmp_path, "SELECT ts FROM breaker_state")[0][0] > breakers_before
    # an operator halt is still honoured by the reloaded daemon
    out = subprocess.run([sys.executable, "-m", "bot", "halt", "--config", str(config), "--why", "after reload"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    wait_for("halted", lambda: d.health()["trading_state"] == "halted", d.proc)
    assert reloaded_ms > 0
    d.signal(signal.SIGTERM)
    assert d.wait()[0] == 0


def test_sighup_while_starting_does_not_kill_the_daemon(
        write_config: Callable[..., Path], tmp_path: Path, daemons: list[Daemon]) -> None:
    d = Daemon(write_config, tmp_path)
    daemons.append(d)
    d.start_nowait(d.config(speed=20))
    time.sleep(0.3)  # python has started; the bot's modules are still importing
    d.signal(signal.SIGHUP)
    wait_for("health port", lambda: d.port_file.exists() and d.port_file.read_text().strip(), d.proc)
    h = wait_for("the early reload applied", lambda: (h := d.health())["last_reload"].get("ok") and h, d.proc)
    assert h["status"] in ("ok", "degraded")
    d.signal(signal.SIGTERM)
    rc, _, err = d.wait()
    assert rc == 0, err


def test_a_model_reload_failure_shows_in_health_and_is_notified(
        write_config: Callable[..., Path], tmp_path: Path, daemons: list[Daemon]) -> None:
    models = tmp_path / "models" / "BTC_USDT_1h" / "m1"
    models.mkdir(parents=True)
    (models / "meta.json").write_text("{ this is not json")  # a model file broken on disk
    hook = Webhook()
    d = Daemon(write_config, tmp_path)
    daemons.append(d)
    config = d.config(speed=20, extra=f'\n[notify]\nwebhook_url = "{hook.url}"\n')
    try:
        d.start(config)
        config.write_text(config.read_text() + '\n[[strategies]]\nname = "nn"\nkind = "neural"\n'
                          f'params = {{ models = ["m1"], models_dir = "{tmp_path / "models"}" }}\n')
        d.signal(signal.SIGHUP)  # a reload that loads the model
        h = wait_for("rejected reload", lambda: (h := d.health())["last_reload"].get("ok") is False and h, d.proc)
        assert "meta.json" in h["last_reload"]["error"] and h["status"] == "degraded", h["last_reload"]
        assert d.proc.poll() is None  # type: ignore[union-attr]
        notes = wait_for("notification", lambda: [n for n in hook.received if "reload" in json.dumps(n)], d.proc)
        assert any(n["kind"] == "error" and "meta.json" in json.dumps(n) for n in notes), notes
    finally:
        hook.close()


def rows(tmp: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{tmp / 'bot.sqlite'}?mode=ro", uri=True, timeout=10) as db:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return [(0,)]


class Webhook:
    """A loopback webhook collecting the notifications' JSON bodies."""

    def __init__(self) -> None:
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_reload_takes_risk_and_stops_but_keeps_what_the_wiring_decided(write_config: Callable[..., Path]) -> None:
    from bot.config.load import load_settings
    from bot.engine.settings import EngineSettings
    from bot.kernel.kernel import Kernel

    # an exchange daemon: durable, polling operator halts, persisting breakers, the exchange's fee
    running = EngineSettings(fee_rate=0.00075, durable=True, log_orders=True, state_poll_ms=5_000,
                             persist_breakers=True)
    new = load_settings(write_config("[exchange]\nfee_rate = 0.002\n\n[risk]\nstop_loss_pct = 3.0\n"
                                     "take_profit_pct = 9.0\nslippage_margin_bps = 20.0\n"))
    change = Kernel(new).reloaded(running)
    got = change.engine
    assert change.limits.max_position_pct == new.risk.max_position_pct
    assert (got.stops.stop_loss_pct, got.stops.take_profit_pct, got.slippage_margin_bps) == (3.0, 9.0, 20.0)
    assert (got.fee_rate, got.durable, got.log_orders, got.state_poll_interval_ms, got.breakers_persisted) == (
        0.00075, True, True, 5_000, True)
