"""Bad candle files into ``import``, ``backtest`` and ``evaluate``: one line naming file and line, exit 2.

The commands run in-process through ``bot.cli.parser.main`` (the real entry point) so the dozens
of cases stay fast; one subprocess run checks nothing differs outside pytest.
"""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from bot.cli.parser import main

HEADER = "timestamp,open,high,low,close,volume\n"
T0 = 1_577_836_800_000  # 2020-01-01
HOUR = 3_600_000


def rows(n: int = 30, step: int = HOUR, start: int = T0, price: float = 100.0) -> str:
    return "".join(f"{start + i * step},{price},{price + 1},{price - 1},{price + 0.5},10\n"
                   for i in range(n))


GOOD = HEADER + rows()
GOOD_GZ = gzip.compress(GOOD.encode())

# name -> (file bytes, fragment the one line must hold besides the path)
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "truncated-gzip": (GOOD_GZ[: len(GOOD_GZ) // 2], "gzip"),
    "garbage-gzip": (b"\x1f\x8b" + b"not really gzip at all" * 5, "gzip"),
    "zero-bytes": (b"", "empty"),
    "wrong-header": (b"time,o,h,l,c,v\n" + rows().encode(), "line 1"),
    "missing-header": (rows().encode(), "line 1"),
    "semicolons": (GOOD.replace(",", ";").encode(), "semicolons"),
    "four-columns": (b"timestamp,open,high,low\n" + b"1577836800000,1,2,0.5\n", "line 1"),
    "four-columns-rows": (HEADER.encode() + b"1577836800000,1,2,0.5\n", "line 2"),
    "text-in-price": (GOOD.replace(f"{T0 + 3 * HOUR},100.0", f"{T0 + 3 * HOUR},abc").encode(),
                      "line 5"),
    "ragged": ((GOOD + f"{T0 + 40 * HOUR},1,2\n").encode(), "line 32"),
    "binary": (bytes(range(256)) * 4, "binary"),
    "huge-timestamp": ((GOOD + "99999999999999999999,1,2,0.5,1,1\n").encode(), "line 32"),
    "year-out-of-range": ((GOOD + "253402300800000000,1,2,0.5,1,1\n").encode(), "line 32"),
    "latin1": ((GOOD + "# caf\xe9\n").encode("latin-1"), "UTF-8"),
}


def _check_one_line(code: int, err: str, path: Path, fragment: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and fragment in lines[0], lines[0]


def _candle_count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return con.execute("SELECT COUNT(*) FROM candles").fetchone()[0] if "candles" in tables else 0


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_import_bad_file_is_one_line_and_stores_nothing(name: str, tmp_path: Path, capsys) -> None:
    data, fragment = BAD_FILES[name]
    path = tmp_path / f"{name}.csv"
    path.write_bytes(data)
    db = tmp_path / "s.sqlite"
    code = main(["import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", "--db", str(db)])
    _check_one_line(code, capsys.readouterr().err, path, fragment)
    assert _candle_count(db) == 0


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_evaluate_bad_file_is_one_line(name: str, tmp_path: Path, write_config, capsys) -> None:
    data, fragment = BAD_FILES[name]
    path = tmp_path / "BTC_USDT-1h.csv"
    path.write_bytes(data)
    code = main(["evaluate", "--config", str(write_config()), "--data", str(path), "--no-progress"])
    _check_one_line(code, capsys.readouterr().err, path, fragment)


@pytest.mark.parametrize("name", ["truncated-gzip", "zero-bytes", "semicolons", "text-in-price",
                                  "huge-timestamp", "binary"])
def test_backtest_bad_file_is_one_line(name: str, tmp_path: Path, capsys) -> None:
    data, fragment = BAD_FILES[name]
    data_dir = tmp_path / "data"
    path = data_dir / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{data_dir}"\n[store]\npath = "{tmp_path / "b.sqlite"}"\n'
                   '[[strategies]]\nname = "b"\nkind = "buy_and_hold"\n')
    code = main(["backtest", "--config", str(cfg)])
    _check_one_line(code, capsys.readouterr().err, path, fragment)


def test_utf8_bom_is_accepted(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    code = main(["import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h",
                 "--db", str(tmp_path / "s.sqlite")])
    assert code == 0, capsys.readouterr().err
    assert _candle_count(tmp_path / "s.sqlite") == 30


def _import(tmp_path: Path, text: str, *extra: str) -> tuple[int, str, str, Path]:
    path = tmp_path / "in.csv"
    path.write_text(text)
    db = tmp_path / "s.sqlite"
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["import", str(path), "--symbol", "BTC/USDT", "--db", str(db), *extra])
    return code, out.getvalue(), err.getvalue(), path


def test_hourly_rows_imported_as_daily_are_refused(tmp_path: Path) -> None:
    code, _, err, path = _import(tmp_path, GOOD, "--timeframe", "1d")
    _check_one_line(code, err, path, "--timeframe 1h")
    assert _candle_count(tmp_path / "s.sqlite") == 0


def test_off_grid_timestamps_are_refused(tmp_path: Path) -> None:
    text = HEADER + rows(start=T0 + 1234)
    code, _, err, path = _import(tmp_path, text, "--timeframe", "1h")
    _check_one_line(code, err, path, "1234 ms off")


def test_invalid_bars_are_never_stored(tmp_path: Path) -> None:
    text = GOOD.replace(f"{T0 + 5 * HOUR},100.0,101.0,99.0,100.5", f"{T0 + 5 * HOUR},-100.0,101.0,99.0,100.5")
    code, out, _, _ = _import(tmp_path, text, "--timeframe", "1h")
    assert code == 0
    assert "invalid bars (never stored): 1" in out
    with sqlite3.connect(tmp_path / "s.sqlite") as con:
        assert con.execute("SELECT MIN(open) FROM candles").fetchone()[0] > 0
        assert con.execute("SELECT COUNT(*) FROM candles").fetchone()[0] == 29


def test_invalid_bars_can_refuse_the_file(tmp_path: Path) -> None:
    text = GOOD.replace(f"{T0 + 5 * HOUR},100.0", f"{T0 + 5 * HOUR},-100.0")
    code, _, err, path = _import(tmp_path, text, "--timeframe", "1h", "--invalid", "refuse")
    _check_one_line(code, err, path, "line 7")
    assert _candle_count(tmp_path / "s.sqlite") == 0


def test_absurd_spike_is_rejected_not_printed_as_300_digits(tmp_path: Path) -> None:
    text = GOOD.replace(f"{T0 + 5 * HOUR},100.0,101.0", f"{T0 + 5 * HOUR},100.0,1e300")
    code, out, _, _ = _import(tmp_path, text, "--timeframe", "1h")
    assert code == 0
    assert max(len(word) for word in out.split() if "/" not in word) < 40, out
    with sqlite3.connect(tmp_path / "s.sqlite") as con:
        assert con.execute("SELECT MAX(high) FROM candles").fetchone()[0] < 1000


def test_bad_file_through_a_real_process(tmp_path: Path) -> None:
    from tests.config.test_config import run_cli

    path = tmp_path / "t.csv.gz"
    path.write_bytes(BAD_FILES["truncated-gzip"][0])
    proc = run_cli("import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", "--dry-run")
    _check_one_line(proc.returncode, proc.stderr, path, "gzip")
