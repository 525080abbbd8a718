"""``[data] source = "store"``: backtest, train and walk-forward read what download/import stored;
a range without candles is an error naming the range and the data's first and last candle."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bot.marketdata.source import CandleSource, NoCandlesError
from bot.cli.parser import main
from bot.marketdata.candle_csv import load_ohlcv_arrays
from strategies.features.history import load_history

T0 = 1_577_836_800_000  # 2020-01-01
HOUR = 3_600_000


@pytest.fixture
def real_slice(data_dir: Path, tmp_path: Path) -> Path:
    """Three weeks of real BTC/USDT hourly candles (2020-01-01 ..), as a normalised file."""
    a = load_ohlcv_arrays(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz")
    sel = (a["ts"] >= T0) & (a["ts"] < T0 + 21 * 24 * HOUR)
    lines = ["timestamp,open,high,low,close,volume"] + [
        ",".join([str(int(a["ts"][i]))] + [repr(float(a[k][i])) for k in ("open", "high", "low", "close", "volume")])
        for i in np.flatnonzero(sel)]
    path = tmp_path / "slice.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _config(tmp_path: Path, source: str, data_dir: Path) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\ndir = "{data_dir}"\nsource = "{source}"\n'
                   f'[store]\npath = "{tmp_path / "s.sqlite"}"\n'
                   '[[strategies]]\nname = "b"\nkind = "buy_and_hold"\n')
    return cfg


def test_backtest_reads_imported_candles_from_the_store(real_slice: Path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    assert main(["import", str(real_slice), "--symbol", "BTC/USDT", "--timeframe", "1h", "--db", str(db)]) == 0
    empty = tmp_path / "no-files"
    empty.mkdir()
    capsys.readouterr()
    code = main(["backtest", "--config", str(_config(tmp_path, "store", empty)), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["candles"] == 21 * 24


def test_history_from_store_equals_history_from_files(real_slice: Path, tmp_path: Path, data_dir: Path
                                                      ) -> None:
    db = tmp_path / "s.sqlite"
    assert main(["import", str(real_slice), "--symbol", "BTC/USDT", "--timeframe", "1h", "--db", str(db)]) == 0
    store = CandleSource("store", tmp_path, db, "binance")
    a = load_history(store, "BTC/USDT", "1h", "2020-01-02", "2020-01-09")
    b = load_history(data_dir, "BTC/USDT", "1h", "2020-01-02", "2020-01-09")
    assert len(a) == len(b) == 7 * 24
    for k in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])


def test_backtest_range_without_candles_names_range_and_data_span(write_config, capsys) -> None:
    code = main(["backtest", "--config", str(write_config()), "--from", "2030-01-01", "--to", "2030-02-01"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "2030-01-01 00:00" in line and "2030-02-01 00:00" in line
    assert "2017-08-17 04:00" in line and "2021-06-10 00:00" in line  # the file's first and last candle


def test_store_source_without_a_store_says_how_to_fill_it(tmp_path: Path, capsys) -> None:
    code = main(["backtest", "--config", str(_config(tmp_path, "store", tmp_path))])
    err = capsys.readouterr().err
    assert code == 2 and "neuralbot download" in err and not (tmp_path / "s.sqlite").exists(), err


def test_empty_store_range_names_what_the_store_holds(real_slice: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    assert main(["import", str(real_slice), "--symbol", "BTC/USDT", "--timeframe", "1h", "--db", str(db)]) == 0
    with pytest.raises(NoCandlesError, match=r"2020-01-01 00:00 -> 2020-01-21 23:00"):
        CandleSource("store", tmp_path, db, "binance").load("BTC/USDT", "1h", T0 + 30 * 24 * HOUR)
