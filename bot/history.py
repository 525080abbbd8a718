"""History: download candles over ccxt into the store (resumable), and import files.

``download`` pages ``fetch_ohlcv`` forward from ``max(since, last stored + 1 bar)``,
upserting each page (the store ignores rows it already has), so an interrupted run
resumes where it stopped and re-running never duplicates. Only closed bars are stored.
ccxt's own rate limiter paces requests; rate-limit and network errors back off
exponentially and retry.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ccxt.async_support as ccxt_async
import structlog

from bot.events import Candle, timeframe_ms
from bot.feeds.backoff import Backoff
from bot.importer import read_candle_file
from bot.quality import QualityPolicy, QualityReport, clean

log = structlog.get_logger(__name__)


class CandleStore(Protocol):
    async def upsert_candles(self, candles: list[Candle]) -> int: ...

    async def last_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> int | None: ...


class Progress(Protocol):
    def update(self, n: int) -> Any: ...

    def close(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class DownloadResult:
    fetched: int
    inserted: int
    pages: int
    first_ts: int | None
    last_ts: int | None
    retries: int


async def download(
    exchange: Any, store: CandleStore, *, exchange_name: str, symbol: str, timeframe: str,
    since_ms: int, until_ms: int | None = None, page_limit: int = 1000,
    progress: Progress | None = None, max_retries: int = 10, seed: int | None = None,
    max_pages: int | None = None,
) -> DownloadResult:
    """Fetch closed ``timeframe`` bars of ``symbol`` in ``[since_ms, until_ms)`` into ``store``."""
    tf = timeframe_ms(timeframe)
    last = await store.last_candle_ts(exchange_name, symbol, timeframe)
    cursor = since_ms if last is None or last < since_ms else last + tf
    backoff = Backoff(0.5, 30.0, 2.0, 0.5, random.Random(seed))
    fetched = inserted = pages = retries = 0
    first_ts: int | None = None
    last_ts: int | None = None
    if last is not None and last >= since_ms:
        log.info("download.resume", symbol=symbol, timeframe=timeframe, from_ts=cursor)
    horizon = await _retrying(exchange.fetch_time, backoff, max_retries)
    end = horizon if until_ms is None else min(until_ms, horizon)
    while cursor < end:
        if max_pages is not None and pages >= max_pages:
            break
        try:
            rows = await exchange.fetch_ohlcv(symbol, timeframe, since=cursor, limit=page_limit)
        except (ccxt_async.NetworkError, ccxt_async.ExchangeNotAvailable) as exc:
            retries += 1
            if retries > max_retries:
                raise
            delay = backoff.next_delay()
            log.warning("download.retry", error_type=type(exc).__name__, delay_s=round(delay, 3))
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        pages += 1
        candles = [
            Candle(exchange_name, symbol, timeframe, int(r[0]), float(r[1]), float(r[2]),
                   float(r[3]), float(r[4]), float(r[5]))
            for r in rows
            if int(r[0]) >= cursor and int(r[0]) < end and int(r[0]) + tf <= horizon
        ]
        if not candles:
            break
        fetched += len(candles)
        inserted += await store.upsert_candles(candles)
        first_ts = candles[0].ts if first_ts is None else first_ts
        last_ts = candles[-1].ts
        if progress is not None:
            progress.update((candles[-1].ts + tf - cursor) // tf)
        cursor = candles[-1].ts + tf
        if len(rows) < page_limit:
            break
    if progress is not None:
        progress.close()
    return DownloadResult(fetched, inserted, pages, first_ts, last_ts, retries)


async def _retrying(fn: Any, backoff: Backoff, max_retries: int) -> Any:
    for attempt in range(max_retries + 1):
        try:
            return await fn()
        except (ccxt_async.NetworkError, ccxt_async.ExchangeNotAvailable):
            if attempt == max_retries:
                raise
            await asyncio.sleep(backoff.next_delay())
    raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class ImportResult:
    report: QualityReport
    inserted: int
    source_format: str


@dataclass(frozen=True, slots=True)
class PreparedImport:
    """A file read and treated, nothing stored yet: any bad input has failed by now."""

    candles: list[Candle]
    report: QualityReport
    source_format: str


async def prepare_import(
    path: Path | str, *, exchange_name: str, symbol: str, timeframe: str,
    policy: QualityPolicy | None = None,
) -> PreparedImport:
    """Read ``path`` (either supported format) and treat its defects per ``policy``."""

    def work() -> PreparedImport:
        raw = read_candle_file(path)
        candles, report = clean(raw, exchange_name, symbol, timeframe, policy)
        return PreparedImport(candles, report, raw.source_format)

    return await asyncio.to_thread(work)


async def store_import(prepared: PreparedImport, store: CandleStore | None, batch: int = 5000
                       ) -> ImportResult:
    """Store the prepared bars (``store=None``: a dry run, the report only)."""
    inserted = 0
    if store is not None:
        for i in range(0, len(prepared.candles), batch):
            inserted += await store.upsert_candles(prepared.candles[i:i + batch])
    return ImportResult(prepared.report, inserted, prepared.source_format)


async def import_file(
    path: Path | str, store: CandleStore | None, *, exchange_name: str, symbol: str,
    timeframe: str, policy: QualityPolicy | None = None,
) -> ImportResult:
    """Read, treat and store ``path``; the file is fully checked before anything is written."""
    prepared = await prepare_import(path, exchange_name=exchange_name, symbol=symbol,
                                    timeframe=timeframe, policy=policy)
    return await store_import(prepared, store)
