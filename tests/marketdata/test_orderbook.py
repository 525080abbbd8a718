"""L2 book sync (Binance snapshot + diff procedure) and book features, on recorded data."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.sim.recordings import load_recordings
from bot.marketdata.orderbook import L2Book, SyncResult, book_features


def test_recorded_diffs_apply_and_a_gap_forces_resync(data_dir: Path) -> None:
    rec = load_recordings(data_dir)["BTCUSDT"]
    snap_at = rec.snapshot_index
    assert snap_at is not None
    diffs = [ln.data for ln in rec.lines if ln.stream and "@depth" in ln.stream][:400]
    book = L2Book("BTC/USDT")
    # diffs before the snapshot are buffered, then replayed on it
    for d in diffs[:5]:
        assert book.apply_message(d) is SyncResult.BUFFERED
    snap = rec.lines[snap_at].data
    assert book.load_snapshot(snap["lastUpdateId"], snap["bids"], snap["asks"]) \
        is SyncResult.APPLIED
    results = [book.apply_message(d) for d in diffs[5:200]]
    assert SyncResult.NEED_SNAPSHOT not in results and book.applied > 100
    assert book.last_update_id == diffs[199]["u"]
    bid, ask = book.top(1)
    assert bid[0][0] < ask[0][0]
    # skip one diff: the next one does not continue the sequence
    assert book.apply_message(diffs[201]) is SyncResult.NEED_SNAPSHOT
    assert not book.synced and book.resyncs == 1


def test_features() -> None:
    bids = [(100.0, 2.0), (99.95, 1.0), (99.0, 5.0)]
    asks = [(100.1, 1.0), (100.2, 1.0), (101.0, 5.0)]
    f = book_features(bids, asks, top_n=2, within_bps=20)
    assert f is not None
    assert f.mid == pytest.approx(100.05)
    assert f.spread == pytest.approx(0.1)
    assert f.spread_bps == pytest.approx(0.1 / 100.05 * 1e4)
    assert f.imbalance == pytest.approx((3 - 2) / 5)
    assert f.bid_depth == pytest.approx(3.0) and f.ask_depth == pytest.approx(2.0)
    assert book_features([], asks) is None
