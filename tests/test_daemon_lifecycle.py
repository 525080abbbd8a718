"""A real ``neuralbot run`` process: one owner per store and portfolio, prompt exits on fatal errors."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.test_daemon import WAIT_S, Daemon, wait_for


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
