"""Fuzzing bad input: malformed TOML, environment overrides and candle files, as a careless or
hostile user would give them, through the real CLI entry point (``bot.cli.parser.main``).

For every generated input: exit code 2 (0 where the input happens to be valid), no
traceback, one line naming the source of the problem, and nothing written to the store.
Examples are bounded per family; each family runs in seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.marketdata.candle_files import CandleFileError
from bot.cli.parser import main
from bot.marketdata.candle_csv import load_ohlcv_arrays
from bot.core.events import Candle

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
T0 = 1_577_836_800_000  # 2020-01-01
HOUR = 3_600_000
HEADER = "timestamp,open,high,low,close,volume"
GOOD_ROWS = [f"{T0 + i * HOUR},{100 + i},{102 + i},{99 + i},{101 + i},{10 + i}" for i in range(40)]
GOOD_CSV = HEADER + "\n" + "\n".join(GOOD_ROWS) + "\n"


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        root = Path(d)
        data = root / "data" / "ohlcv" / "binance"
        data.mkdir(parents=True)
        (data / "BTC_USDT-1h.csv.gz").write_bytes(gzip.compress(GOOD_CSV.encode()))
        yield root


def _run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    err = io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    try:
        os.environ.update(env or {})
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, err.getvalue()


def _assert_one_clear_line(code: int, err: str, *sources: str, problems: int = 1) -> None:
    """Exit 2, no traceback, one line per problem (``problems`` at most), each naming its source."""
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= problems, err
    assert all(any(s in line for s in sources) for line in lines), (sources, err)


def _no_store_write(root: Path) -> None:
    db = root / "store.sqlite"
    if db.exists():
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT COUNT(*) FROM candles").fetchone()[0] == 0


def _backtest_argv(config: Path) -> list[str]:
    # a range without candles: a config that happens to be valid exits 2 too, quickly and naming it
    return ["backtest", "--config", str(config), "--from", "2030-01-01", "--to", "2030-01-02"]


def _base_config(root: Path) -> str:
    return (f'[data]\ndir = "{root / "data"}"\n[store]\npath = "{root / "store.sqlite"}"\n'
            '[[strategies]]\nname = "b"\nkind = "buy_and_hold"\n')


# -- malformed TOML ------------------------------------------------------------------------

KEYS = ["mode", "i_understand_live_trading", "api_key", "API_SECRET", "exchange.fee_rate", "exchange.sandbox",
        "backtest.initial_equity", "backtest.timeframe", "backtest.symbols", "backtest.start",
        "risk.max_position_pct", "risk.stop_loss_pct", "risk.take_profit_pct", "risk.atr_multiple",
        "risk.max_open_positions", "feed.replay_speed", "health.host", "health.port", "health.Token",
        "notify.webhook_url", "notify.queue_size", "logging.level", "data.source", "store.portfolio",
        "walkforward.retrain_every", "daemon.shutdown", "risk.max_postion_pct", "nonsense"]
BAD_VALUES = st.one_of(
    st.sampled_from(['"true"', '"yes"', "1e308", "inf", "-inf", "nan", "-1", "0", "1e400", '""', '" "',
                     "[]", "{}", '"7m"', '"live"', "[1, 2]", "{ a = 1 }", "2019-13-01", '"\\u0000"',
                     "99999999999999999999", "true", '"ftp://x"', '"https://u:p@h/x"']),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
)


def _toml_with(key: str, value: str, base: str) -> str:
    if "." in key:
        table, leaf = key.split(".", 1)
        return f"[{table}]\n{leaf} = {value}\n" + base
    return f"{key} = {value}\n" + base


@FUZZ
@given(key=st.sampled_from(KEYS), value=BAD_VALUES)
def test_fuzz_toml_values(key: str, value: str) -> None:
    with _workdir() as root:
        cfg = root / "c.toml"
        cfg.write_text(_toml_with(key, value, _base_config(root)))
        code, err = _run(_backtest_argv(cfg))
        _assert_one_clear_line(code, err, str(cfg), str(root / "data"))
        _no_store_write(root)


@FUZZ
@given(cut=st.integers(min_value=0, max_value=400), junk=st.binary(max_size=24))
def test_fuzz_toml_syntax(cut: int, junk: bytes) -> None:
    """Truncated or byte-corrupted files: never a traceback."""
    with _workdir() as root:
        cfg = root / "c.toml"
        text = ('mode = "paper"\n[risk]\nmax_position_pct = 5.0\n' + _base_config(root)).encode()
        cfg.write_bytes(text[:cut] + junk + text[cut:])
        code, err = _run(_backtest_argv(cfg))
        _assert_one_clear_line(code, err, str(cfg), str(root / "data"))
        _no_store_write(root)


# -- environment overrides ---------------------------------------------------------------------

ENV_NAMES = ["NEURALBOT_RISK", "NEURALBOT_STRATEGIES", "NEURALBOT_BACKTEST", "NEURALBOT_MODE",
             "NEURALBOT_I_UNDERSTAND_LIVE_TRADING", "NEURALBOT_API_KEY", "NEURALBOT_HEALTH__TOKEN",
             "NEURALBOT_RISK__MAX_POSITION_PCT", "NEURALBOT_BACKTEST__INITIAL_EQUITY",
             "NEURALBOT_EXCHANGE__FEE_RATE", "NEURALBOT_HEALTH__HOST", "NEURALBOT_NOTIFY",
             "NEURALBOT_MODELS", "NEURALBOT_DATA__SOURCE", "NEURALBOT_FEED__REPLAY_SPEED"]
ENV_VALUES = st.one_of(
    st.sampled_from(["notjson", "[1,2", "{", '{"x": 1}', "[]", "{}", "null", "yes", "1e308", "inf",
                     "nan", "", " ", "live", '[{"name": 1}]', '{"max_position_pct": "x"}', "0.0.0.0"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=16),
)


@FUZZ
@given(env=st.dictionaries(st.sampled_from(ENV_NAMES), ENV_VALUES, min_size=1, max_size=2))
def test_fuzz_environment_overrides(env: dict[str, str]) -> None:
    with _workdir() as root:
        cfg = root / "c.toml"
        cfg.write_text(_base_config(root))
        code, err = _run(_backtest_argv(cfg), env)
        _assert_one_clear_line(code, err, str(cfg), str(root / "data"), problems=len(env))
        _no_store_write(root)


# -- candle files ---------------------------------------------------------------------------------

LINE_EDITS = st.sampled_from([
    lambda line: line.replace(",", ";"), lambda line: line.rsplit(",", 2)[0], lambda line: line + ",7",
    lambda line: "abc," + line.split(",", 1)[1], lambda line: line.replace("1", "x", 1),
    lambda line: "99999999999999999999," + line.split(",", 1)[1], lambda line: "-5," + line.split(",", 1)[1],
    lambda line: "253402300800000000," + line.split(",", 1)[1], lambda line: line.replace(",", ",-", 1),
    lambda line: line.replace(",", ",1e300,", 1).rsplit(",", 1)[0], lambda line: line + "\x00",
    lambda line: "\ufeff" + line, lambda line: "", lambda line: line.split(",")[0] + ",nan,nan,nan,nan,1",
    lambda line: str(T0 + 1234) + "," + line.split(",", 1)[1],
])


@st.composite
def candle_files(draw: st.DrawFn) -> bytes:
    lines = [HEADER, *GOOD_ROWS]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[i] = draw(LINE_EDITS)(lines[i])
    data = ("\n".join(lines) + "\n").encode()
    how = draw(st.sampled_from(["plain", "gzip", "truncated-gzip", "bytes", "cut"]))
    if how == "gzip":
        return gzip.compress(data)
    if how == "truncated-gzip":
        packed = gzip.compress(data)
        return packed[: draw(st.integers(min_value=0, max_value=len(packed) - 1))]
    if how == "bytes":
        return draw(st.binary(max_size=200))
    if how == "cut":
        return data[: draw(st.integers(min_value=0, max_value=len(data)))]
    return data


@FUZZ
@given(data=candle_files())
def test_fuzz_candle_file_import(data: bytes) -> None:
    with _workdir() as root:
        path = root / "in.csv"
        path.write_bytes(data)
        db = root / "store.sqlite"
        code, err = _run(["import", str(path), "--symbol", "BTC/USDT", "--timeframe", "1h", "--db", str(db)])
        if code == 0:  # the edits left a valid file: what was stored is sane
            with sqlite3.connect(db) as con:
                for row in con.execute("SELECT ts, open, high, low, close, volume FROM candles"):
                    assert Candle("binance", "BTC/USDT", "1h", *row).problem() is None and row[0] % HOUR == 0
            return
        _assert_one_clear_line(code, err, str(path))
        assert not db.exists()  # the file is checked before the store is even opened


@FUZZ
@given(data=candle_files())
def test_fuzz_candle_file_reader(data: bytes) -> None:
    """The reader behind backtest, train and evaluate: arrays, or a CandleFileError naming the file."""
    with _workdir() as root:
        path = root / "BTC_USDT-1h.csv"
        path.write_bytes(data)
        try:
            arrays = load_ohlcv_arrays(path)
        except CandleFileError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
        ts = arrays["ts"]
        assert (ts[1:] > ts[:-1]).all() and all(len(v) == len(ts) for v in arrays.values())


@pytest.mark.parametrize("command", ["evaluate", "backtest"])
def test_fuzz_examples_through_evaluate_and_backtest(command: str) -> None:
    """A sample of the generated files through the other two readers' commands."""
    samples = [b"", b"\x1f\x8b\x08garbage", GOOD_CSV.replace(",", ";").encode(),
               (GOOD_CSV + "1,2\n").encode(), bytes(range(256))]
    for data in samples:
        with _workdir() as root:
            path = root / "data" / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"
            path.write_bytes(data)
            cfg = root / "c.toml"
            cfg.write_text(_base_config(root))
            argv = ["evaluate", "--config", str(cfg), "--data", str(path), "--no-progress"] \
                if command == "evaluate" else ["backtest", "--config", str(cfg)]
            code, err = _run(argv)
            _assert_one_clear_line(code, err, str(path))
            _no_store_write(root)


# -- malformed exchange messages into the live feed -------------------------------------------------

FIELD = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                  st.sampled_from(["nan", "-1", "1e309", "0", "abc", ""]), st.lists(st.integers(), max_size=2))
KLINE_T = st.one_of(FIELD, st.integers(min_value=0, max_value=10**6).map(lambda n: T0 + n * HOUR),
                    st.integers(min_value=1, max_value=HOUR - 1).map(lambda n: T0 + 5 * HOUR + n))


@st.composite
def exchange_messages(draw: st.DrawFn) -> str:
    import json

    kind = draw(st.sampled_from(["kline", "kline", "kline", "not-json", "not-object", "other-event"]))
    if kind == "not-json":
        return draw(st.sampled_from(['{"e": "kline", "k": {', "\x00\xff", "[1,", "nan", "}{"]))
    if kind == "not-object":
        return json.dumps(draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5), st.integers())))
    k = {"t": draw(KLINE_T), "T": draw(FIELD), "s": draw(st.sampled_from(["BTCUSDT", "ETHUSDT", "", None, 5])),
         "i": draw(st.sampled_from(["1h", "7m", None, 3])), "x": draw(FIELD)}
    for name in ("o", "h", "l", "c", "v"):
        k[name] = draw(FIELD)
    k = {key: value for key, value in k.items() if draw(st.booleans()) or key in ("t", "s", "i")}
    event = "kline" if kind == "kline" else draw(st.sampled_from(["trade", "depthUpdate", None]))
    return json.dumps({"e": event, "E": draw(FIELD), "s": "BTCUSDT", "k": k}, allow_nan=True)


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(exchange_messages(), min_size=1, max_size=6))
def test_fuzz_live_feed_messages(messages: list[str], data_dir: Path) -> None:
    """Malformed pushes on the kline stream: the feed survives and emits exactly the real bars."""
    import asyncio

    from bot.sim import FaultSettings, SimExchange, SimSettings, make_ccxt_binance
    from bot.sim.testing import ExchangeClock
    from bot.feeds.live import LiveFeed
    from bot.feeds.live_settings import LiveFeedSettings

    bars = 30
    sim_settings = SimSettings(data_dir=data_dir, speed=HOUR / 20, start_ms=T0, end_ms=T0 + bars * HOUR,
                               symbols=("BTC/USDT",), timeframes=("1h",), book_replay=False,
                               faults=FaultSettings())
    feed_settings = LiveFeedSettings(symbols=("BTC/USDT",), timeframes=("1h",), since_ms=T0,
                                     reconnect_initial_s=0.005, reconnect_max_s=0.05, kline_interval_s=0.5,
                                     max_clock_skew_ms=None, seed=7)

    async def scenario() -> list[Candle]:
        async with SimExchange(sim_settings) as sim:
            feed = LiveFeed(make_ccxt_binance(sim.http_url, sim.ws_url), feed_settings, ExchangeClock(sim))
            got: list[Candle] = []
            try:
                async for event in feed:
                    assert isinstance(event, Candle)
                    got.append(event)
                    if len(got) == 5:  # mid-stream: the hostile pushes arrive between real ones
                        for text in messages:
                            sim.hub.publish("btcusdt@kline_1h", text)
                    if event.close_ts >= T0 + bars * HOUR:
                        break
            finally:
                await feed.close()
            return got

    got = asyncio.run(asyncio.wait_for(scenario(), timeout=25))
    from bot.marketdata.candle_csv import load_candles_csv

    want = load_candles_csv(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz", since_ms=T0, until_ms=T0 + bars * HOUR)
    assert got == want  # every real bar once, in order, with the exchange's values; nothing invented
