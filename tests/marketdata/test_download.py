"""Import of the real file formats, the data-quality report, and resumable download."""

from __future__ import annotations

import gzip
from pathlib import Path

from bot.marketdata.candle_csv import load_candles_csv
from bot.sim import FaultSettings, SimExchange, SimSettings, make_ccxt_binance
from bot.marketdata.download import download, import_file
from bot.marketdata.importer import read_candle_file
from bot.marketdata.quality import QualityPolicy, clean
from bot.store.store import Store

HOUR = 3_600_000
FIRST_BTC = 1_502_942_400_000  # 2017-08-17 04:00, the absurd print


async def test_import_normalised_file_reports_real_defects(data_dir: Path, tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.sqlite")
    try:
        path = data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz"
        res = await import_file(path, store, exchange_name="binance", symbol="BTC/USDT",
                                timeframe="1h")
        rep = res.report
        assert res.source_format == "normalised" and rep.rows_read == 36_062
        assert len(rep.gaps) == 8 and all(2 <= n <= 5 for _, n in rep.gaps if n > 1)
        assert 2_600 <= rep.duplicates <= 2_700
        assert FIRST_BTC in [ts for ts, _ in rep.outliers]
        assert rep.zero_volume > 0
        assert res.inserted == 36_062 - rep.duplicates
        again = await import_file(path, store, exchange_name="binance", symbol="BTC/USDT",
                                  timeframe="1h")
        assert again.inserted == 0  # idempotent
    finally:
        await store.close()


async def test_messy_cryptodatadownload_file_equals_normalised(data_dir: Path, tmp_path: Path
                                                             ) -> None:
    raw_file = data_dir / "raw/cryptodatadownload/Binance_BTCUSDT_1h.csv"
    # the published variant with the URL line before the header, gzipped
    text = "https://www.CryptoDataDownload.com\n" + raw_file.read_text()
    messy = tmp_path / "messy.csv.gz"
    with gzip.open(messy, "wt") as fh:
        fh.write(text)
    a = read_candle_file(raw_file)
    b = read_candle_file(messy)
    assert a.source_format == b.source_format == "cryptodatadownload"
    assert (a.ts == b.ts).all()
    assert (a.ts[1:] >= a.ts[:-1]).all()  # newest-first turned ascending
    assert a.ts[0] == FIRST_BTC  # seconds (1502942400.0) converted to milliseconds
    candles, _ = clean(a, "binance", "BTC/USDT", "1h")
    reference = load_candles_csv(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz")
    ref_by_ts = {c.ts: c for c in reference}
    assert len(candles) == len(reference)
    sample = candles[::997]
    assert all(abs(c.close - ref_by_ts[c.ts].close) < 1e-6 for c in sample)


async def test_policies_drop_and_forward_fill(data_dir: Path) -> None:
    raw = read_candle_file(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz")
    policy = QualityPolicy(gaps="forward_fill", outliers="drop", zero_volume="forward_fill")
    candles, rep = clean(raw, "binance", "BTC/USDT", "1h", policy)
    ts = [c.ts for c in candles]
    assert FIRST_BTC not in ts and rep.dropped == 1
    steps = {b - a for a, b in zip(ts, ts[1:], strict=False)}
    assert steps == {HOUR}  # gap-free after forward fill
    assert rep.filled == rep.missing_bars + rep.zero_volume
    assert all(c.volume > 0 or c.open == c.close == c.high == c.low for c in candles)


async def test_download_resumes_without_duplicates(data_dir: Path, tmp_path: Path) -> None:
    start, bars = 1_577_836_800_000, 450
    settings = SimSettings(data_dir=data_dir, speed=1.0, start_ms=start + bars * HOUR + 1,
                           symbols=("BTC/USDT",), timeframes=("1h",), book_replay=False,
                           faults=FaultSettings(http_429_every_n=3,
                                                http_fault_paths=("/api/v3/klines",)))
    async with SimExchange(settings) as sim:
        ex = make_ccxt_binance(sim.http_url, pro=False)
        store = await Store.open(tmp_path / "dl.sqlite")
        try:
            kw = dict(exchange_name="binance", symbol="BTC/USDT", timeframe="1h",
                      since_ms=start, page_limit=100, seed=1)
            first = await download(ex, store, max_pages=2, **kw)  # "interrupted"
            assert first.inserted == 200
            second = await download(ex, store, **kw)
            third = await download(ex, store, **kw)
            assert second.retries >= 1  # 429s were backed off and retried
            assert third.inserted == 0
            stored = await store.load_candles("binance", "BTC/USDT", "1h")
            want = load_candles_csv(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz",
                                    since_ms=start, until_ms=start + bars * HOUR)
            assert stored == want
        finally:
            await store.close()
            await ex.close()
