"""Cross-asset features (``strategies.features.cross``): batch == stream on real BTC and ETH, no look-ahead
(the peer's bar of the same hour is never read), hand-checked values, a stale peer reads NaN, and a
config that needs a peer's candles it lacks is refused naming the fix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.marketdata.candle_csv import arrays_to_candles, load_ohlcv_arrays
from bot.core.events import Candle
from strategies.features.buffer import FeatureBuffer
from strategies.features.cross import PeerContext, peer_symbol
from strategies.features.compute import CROSS_SPEC, DEFAULT_SPEC, compute_features
from strategies.features.history import clean_history
from tests.conftest import DATA_DIR
from tests.strategies.features.test_features import assert_same

ETH_1H = DATA_DIR / "ohlcv" / "binance" / "ETH_USDT-1h.csv.gz"
BTC_1H = DATA_DIR / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"
needs_data = pytest.mark.skipif(not ETH_1H.exists(), reason=f"real data not found at {ETH_1H}")
HOUR = 3_600_000


def _stretch(path: object) -> dict[str, np.ndarray]:
    """3,000 raw rows from 2020-08 on: the duplicated-export region and real gaps included."""
    a = load_ohlcv_arrays(path)  # type: ignore[arg-type]
    i0 = int(np.searchsorted(a["ts"], 1_596_240_000_000))
    return {k: v[i0 : i0 + 3000] for k, v in a.items()}


@pytest.fixture(scope="module")
def pair() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return _stretch(ETH_1H), _stretch(BTC_1H)


def _stream(own: list[Candle], peer: list[Candle], seed: int) -> np.ndarray:
    """Both raw streams through their own validating buffers in time order; within an hour the
    two symbols' candles arrive in random order (as two live feeds would)."""
    rng = np.random.default_rng(seed)
    buf = FeatureBuffer("ETH/USDT", "1h", CROSS_SPEC, n_steps=8, capacity=64)
    peer_buf = FeatureBuffer("BTC/USDT", "1h", DEFAULT_SPEC, n_steps=8, capacity=64)
    events = [(c.ts, rng.random(), "own", c) for c in own] + [(c.ts, rng.random(), "peer", c) for c in peer]
    rows: list[np.ndarray] = []
    for _, _, who, c in sorted(events, key=lambda e: (e[0], e[1])):
        if who == "peer":
            if peer_buf.on_candle(c) is None:  # only what the peer's own buffer accepts
                buf.on_peer_candle(c)
        elif buf.on_candle(c) is None:
            rows.append(np.array(buf.window(1)))
    return np.concatenate(rows)


def _batch(eth: dict[str, np.ndarray], btc: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                           dict[str, np.ndarray]]:
    own = clean_history(eth, "ETH/USDT", "1h").arrays
    peer = clean_history(btc, "BTC/USDT", "1h").arrays
    return compute_features(own, CROSS_SPEC, peer=peer), own, peer


@needs_data
@pytest.mark.parametrize("seed", [0, 1])
def test_cross_asset_features_batch_equals_stream_on_real_data(pair, seed: int) -> None:
    eth, btc = pair
    batch, own, _ = _batch(eth, btc)
    live = _stream(arrays_to_candles(eth, "binance", "ETH/USDT", "1h"),
                   arrays_to_candles(btc, "binance", "BTC/USDT", "1h"), seed)
    assert live.shape == batch.shape == (len(own["ts"]), CROSS_SPEC.n_features)
    assert_same(batch, live)
    peer_cols = [CROSS_SPEC.columns.index(c) for c in CROSS_SPEC.columns if c.startswith("peer_")]
    assert len(peer_cols) == 5
    assert np.isfinite(batch[CROSS_SPEC.max_lookback :, peer_cols]).mean() > 0.99


@needs_data
def test_the_whole_peer_history_first_gives_the_same_rows(pair) -> None:
    """A peer fed far ahead (a daemon warming one symbol before the other) is read by open time."""
    eth, btc = pair
    batch, own, peer = _batch(eth, btc)
    buf = FeatureBuffer("ETH/USDT", "1h", CROSS_SPEC, n_steps=8, capacity=4096)
    for c in arrays_to_candles(peer, "binance", "BTC/USDT", "1h"):
        buf.on_peer_candle(c)
    buf.on_candles(arrays_to_candles(own, "binance", "ETH/USDT", "1h"))
    assert_same(batch[-len(buf):], np.asarray(buf.window()))


@needs_data
def test_no_look_ahead_the_same_hour_of_the_peer_is_never_read(pair) -> None:
    eth, btc = pair
    base, own, peer = _batch(eth, btc)
    rng = np.random.default_rng(3)
    for cut in (400, 1700, 2800):
        t_cut = int(own["ts"][cut - 1])  # the last row kept: its own hour of the peer may change
        p2 = {k: v.copy() for k, v in peer.items()}
        later = p2["ts"] >= t_cut
        f = rng.uniform(0.5, 2.0, size=int(later.sum()))
        for k in ("open", "high", "low", "close"):
            p2[k][later] *= f
        o2 = {k: v.copy() for k, v in own.items()}
        for k in ("open", "high", "low", "close"):
            o2[k][cut:] *= 1.3
        changed = compute_features(o2, CROSS_SPEC, peer=p2)
        assert_same(base[:cut], changed[:cut])
        col = CROSS_SPEC.columns.index("peer_ret_1")
        assert not np.allclose(np.nan_to_num(base[cut + 1 :, col]), np.nan_to_num(changed[cut + 1 :, col]))


@needs_data
def test_values_by_hand_on_real_data(pair) -> None:
    eth, btc = pair
    batch, own, peer = _batch(eth, btc)
    cols = {c: CROSS_SPEC.columns.index(f"peer_{c}") for c in PeerContext.outputs}
    pts, pc = peer["ts"], peer["close"]
    checked = 0
    for i in range(400, len(own["ts"]), 97):
        j = int(np.searchsorted(pts, own["ts"][i])) - 1  # the last peer bar opened before this one
        if pts[j] < own["ts"][i] - 3 * HOUR:
            continue
        assert batch[i, cols["ret_1"]] == pytest.approx(math.log(pc[j] / pc[j - 1]), abs=1e-12)
        assert batch[i, cols["ret_24"]] == pytest.approx(math.log(pc[j] / pc[j - 24]), abs=1e-12)
        r = np.log(pc[j - 23 : j + 1] / pc[j - 24 : j])
        assert batch[i, cols["vol_24"]] == pytest.approx(math.sqrt(np.mean(r * r)), rel=1e-9)
        ratio = math.log(own["close"][i] / pc[j])
        k = int(np.searchsorted(pts, own["ts"][i - 24])) - 1  # where the ratio stood 24 own bars ago
        assert batch[i, cols["ratio_ret_24"]] == pytest.approx(ratio - math.log(own["close"][i - 24] / pc[k]),
                                                               abs=1e-12)
        checked += 1
    assert checked > 20


def test_a_stale_peer_reads_nan_and_the_ratio_restarts() -> None:
    ind = PeerContext(bars=2, ratio_bars=3, max_stale=1)
    from strategies.features.indicators import Ctx

    ctx = Ctx()
    out = []
    for h in range(12):
        if h not in (6, 7, 8):  # the peer prints nothing for three hours
            ind.push_peer(h * HOUR, 100.0 + h, 101.0 + h, 99.0 + h, 100.0 + h)
        ctx.ts, ctx.close = h * HOUR, 50.0 + h
        out.append(ind.step(ctx))
    assert all(math.isnan(v) for v in out[0])  # no peer bar before the first own bar
    assert math.isfinite(out[5][0]) and math.isfinite(out[5][4])
    assert math.isfinite(out[7][0])  # one own bar without a new peer bar is tolerated (max_stale)
    assert all(math.isnan(v) for v in out[8]) and all(math.isnan(v) for v in out[9])
    assert math.isfinite(out[10][0]) and math.isnan(out[10][4])  # back, the ratio's mean refills


def test_peer_symbols_and_the_missing_peer() -> None:
    assert peer_symbol("ETH/USDT") == "BTC/USDT"
    assert peer_symbol("ADA/USDT") == "BTC/USDT"
    assert peer_symbol("BTC/USDT") == "ETH/USDT"
    assert peer_symbol("btc/EUR") == "ETH/EUR"
    with pytest.raises(ValueError, match="BASE/QUOTE"):
        peer_symbol("BTCUSDT")
    a = {k: np.arange(1.0, 5.0) for k in ("open", "high", "low", "close", "volume")}
    a["ts"] = np.arange(4, dtype=np.int64) * HOUR
    with pytest.raises(ValueError, match="reads the peer symbol's candles"):
        compute_features(a, CROSS_SPEC)
    assert PeerContext.outputs == tuple(c.removeprefix("peer_") for c in CROSS_SPEC.columns[-5:])


@needs_data
def test_the_neural_strategy_reads_its_peer_live_and_in_a_replay_alike(pair) -> None:
    """A cross-asset model in the neural strategy on BTC and ETH: bar by bar (each symbol's accepted
    candles feed the other's features) equals the batch-precomputed replay; a strategy without the
    peer among its symbols is refused naming the fix."""
    from bot.core.buffer import CandleBuffer
    from strategies.base import BarContext
    from strategies.models.spec import ModelSpec
    from strategies.models.zoo import build_model
    from strategies.neural import NeuralEnsemble
    from strategies.predictor import ModelHolder
    from strategies.features.windows import Normalizer, Windows, valid_ends

    eth, btc = pair
    feats, own, _ = _batch(eth, btc)
    spec = ModelSpec(name="gbm", kind="gbm", window=8, gbm_max_iter=5, gbm_lags=(0, 1), features="cross")
    ends = valid_ends(feats, None, spec.window)[:1500]
    y = (np.roll(own["close"], -1) > own["close"]).astype(np.float32)
    model = build_model(spec, feats.shape[1], Normalizer.fit(feats[ends[0] - 8 : ends[-1] + 1]))
    w = Windows(feats, ends, y[ends], spec.window)
    model.fit(w.subset(slice(0, 1200)), w.subset(slice(1200, None)))
    kw = {"features": "cross", "vote_k": 1, "threshold": 0.5, "explain": "none"}

    def holders(*symbols: str) -> dict[str, ModelHolder]:
        return {s: ModelHolder("x", s, "1h", {"gbm": model}) for s in symbols}

    with pytest.raises(ValueError, match="add BTC/USDT to the strategy's symbols"):
        NeuralEnsemble("x", ("ETH/USDT",), "1h", holders("ETH/USDT"), **kw)
    candles = {s: arrays_to_candles(a, "binance", s, "1h") for s, a in (("ETH/USDT", eth), ("BTC/USDT", btc))}

    def run(strategy: NeuralEnsemble) -> dict[tuple[str, int], float]:
        bufs = {s: CandleBuffer(s, "1h", 4) for s in candles}
        out = {}
        for c in sorted((c for cs in candles.values() for c in cs), key=lambda c: (c.ts, c.symbol)):
            if bufs[c.symbol].append(c) is None:
                sig = strategy.evaluate(BarContext(c, bufs[c.symbol].window(2), 0.0))
                if sig is not None:
                    out[(c.symbol, c.ts)] = float(sig.probability)
        return out

    live = run(NeuralEnsemble("x", ("BTC/USDT", "ETH/USDT"), "1h", holders("BTC/USDT", "ETH/USDT"), **kw))
    replay = NeuralEnsemble("x", ("BTC/USDT", "ETH/USDT"), "1h", holders("BTC/USDT", "ETH/USDT"), **kw)
    for s, cs in candles.items():
        replay.prepare_replay(s, cs)
    fast = run(replay)
    assert set(live) == set(fast) and sum(s == "ETH/USDT" for s, _ in live) > 2500
    np.testing.assert_allclose([live[k] for k in sorted(live)], [fast[k] for k in sorted(live)], atol=1e-6)


@needs_data
@pytest.mark.parametrize("command", ["walkforward", "evaluate"])
def test_a_config_needing_the_peer_it_lacks_exits_2_naming_the_fix(
    tmp_path, command: str, capsys: pytest.CaptureFixture[str],
) -> None:
    from bot.cli.parser import main

    only_eth = tmp_path / "data" / "ohlcv" / "binance"
    only_eth.mkdir(parents=True)
    (only_eth / ETH_1H.name).symlink_to(ETH_1H)
    config = tmp_path / "config.toml"
    config.write_text(
        '[backtest]\nsymbols = ["ETH/USDT"]\nstart = 2019-01-01\nend = 2019-05-01\n'
        f'[data]\ndir = "{tmp_path / "data"}"\n[store]\npath = "{tmp_path / "bot.sqlite"}"\n'
        '[walkforward]\nmin_train_days = 60\nretrain_every = "30d"\ncache_dir = ""\n'
        '[[strategies]]\nname = "ma"\nkind = "ma_crossover"\n'
        '[[models]]\nname = "gbm_x"\nkind = "gbm"\nfeatures = "cross"\ngbm_max_iter = 5\n')
    extra = ["--data", str(only_eth / ETH_1H.name)] if command == "evaluate" else []
    assert main([command, "--config", str(config), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "gbm_x" in err[0] and "BTC/USDT" in err[0] and 'features = "default"' in err[0]
    assert "BTC_USDT-1h.csv.gz" in err[0]  # where the candles were looked for


@needs_data
def test_the_daemon_retrain_judges_a_cross_asset_model(tmp_path) -> None:
    """The retrain job loads the peer's candles for a model that reads them (it used to fail with
    'needs the peer' on every scheduled retrain)."""
    from bot.ops.retrain_job import RetrainJob, run_job
    from strategies.features.history import History, load_history
    from strategies.models.spec import ModelSpec
    from strategies.models.registry import model_dir, save_model
    from strategies.training.pipeline import Dataset, train_model

    hist = load_history(DATA_DIR, "BTC/USDT", "1h", "2021-01-01", "2021-06-01")
    peer = load_history(DATA_DIR, "ETH/USDT", "1h", "2021-01-01", "2021-06-01")
    first = History(hist.symbol, hist.timeframe, {k: v[:-300] for k, v in hist.arrays.items()})
    spec = ModelSpec(name="gx", kind="gbm", window=8, gbm_max_iter=5, gbm_lags=(0, 1), features="cross",
                     select_by="net_return", target="triple_barrier", horizon=6)
    res = train_model(spec, Dataset.build(first, CROSS_SPEC, peer))
    save_model(res.model, model_dir(tmp_path / "models", "BTC/USDT", "1h", "gx"), CROSS_SPEC)
    end = int(hist.arrays["ts"][-1]) + HOUR
    job = RetrainJob(str(tmp_path / "models"), "BTC/USDT", "1h", str(DATA_DIR), end_ms=end, train_bars=2500,
                     eval_bars=300, staging=str(tmp_path / "staging"))
    (verdict,) = run_job(job)
    assert verdict.error == "", verdict.error
    assert math.isfinite(verdict.incumbent) and math.isfinite(verdict.candidate)
