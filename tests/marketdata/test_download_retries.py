"""``download`` against an unreachable exchange shows every retry and its wait as it happens."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from bot.cli.parser import main
from bot.sim import make_ccxt_binance
from bot.marketdata.download import RetryNotice, download
from bot.store.store import Store


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_each_retry_is_announced_before_its_wait(tmp_path: Path) -> None:
    ex = make_ccxt_binance(f"http://127.0.0.1:{_closed_port()}", pro=False)
    seen: list[tuple[float, RetryNotice]] = []
    store = await Store.open(tmp_path / "s.sqlite")
    try:
        try:
            await download(ex, store, exchange_name="binance", symbol="BTC/USDT", timeframe="1h",
                           since_ms=0, max_retries=2, seed=1,
                           on_retry=lambda n: seen.append((time.monotonic(), n)))
        except Exception as exc:  # noqa: BLE001 - the network error after the last retry
            failed_at, error = time.monotonic(), exc
    finally:
        await store.close()
        await ex.close()
    assert type(error).__name__ in ("NetworkError", "ExchangeNotAvailable", "RequestTimeout")
    assert [(n.call, n.attempt, n.max_retries) for _, n in seen] == [("fetch_time", 1, 2), ("fetch_time", 2, 2)]
    # announced before the wait, not after: the failure comes at least the waits later
    assert failed_at - seen[0][0] >= seen[0][1].delay_s + seen[1][1].delay_s - 0.05


def test_cli_prints_each_retry_with_its_wait(tmp_path: Path, capsys) -> None:
    code = main(["download", "--symbol", "BTC/USDT", "--timeframe", "1h", "--since", "2020-01-01",
                 "--exchange-url", f"http://127.0.0.1:{_closed_port()}", "--db", str(tmp_path / "s.sqlite"),
                 "--no-progress", "--max-retries", "2"])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("download")]  # not the log lines
    assert "retry 1/2 in" in lines[0] and "retry 2/2 in" in lines[1] and " s" in lines[0], err
    assert lines[2].startswith("download failed") and len(lines) == 3 and "Traceback" not in err
