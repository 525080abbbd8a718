"""Settings of the loopback exchange: what it replays, how fast, and which faults it injects."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """Faults injected into one run. ``None``/``0`` switches a fault off.

    Count-based faults are deterministic (preferred in tests); the time-based drop is
    for demos. "Data messages" are stream pushes, not subscription acknowledgements.
    """

    drop_every_n_messages: int | None = None  # close a ws connection after N data messages
    drop_every_s: float | None = None  # close each ws connection N seconds after it opened
    delay_ms: float = 0.0  # delay every ws push by this much (real time)
    malformed_every_n: int | None = None  # every N-th data message is sent as broken JSON
    skip_depth_every_n: int | None = None  # every N-th diff-depth push is silently dropped
    http_429_every_n: int | None = None  # every N-th REST request is answered 429
    http_5xx_every_n: int | None = None  # every N-th REST request is answered 503
    http_fault_paths: tuple[str, ...] = ()  # restrict the 429/5xx faults to these paths
    retry_after_s: int = 1  # Retry-After header of the 429 answers
    order_timeout_every_n: int | None = None  # every N-th order is placed, then never answered
    order_timeout_hang_s: float = 30.0  # how long the unanswered order request hangs


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Binance's REST limits (its values by default); ``None`` switches one off."""

    request_weight_per_minute: int | None = 6000
    orders_per_10s: int | None = 100
    orders_per_day: int | None = 200_000
    ban_after: int = 10  # requests sent while told to back off (429) before a 418 ban
    ban_s: float = 120.0  # how long a 418 ban lasts (real seconds)


UNLIMITED = RateLimitSettings(None, None, None)


@dataclass(frozen=True, slots=True)
class SimSettings:
    """What the loopback exchange serves.

    Simulated time: ``sim_now = start_ms + real_elapsed_ms * speed``. Candles whose
    close time is ``<= sim_now`` are closed; the open one is served partially filled.
    The recorded order-book traffic runs on its own timeline at ``book_speed``.
    """

    data_dir: Path = Path("../shared/data")
    exchange: str = "binance"
    host: str = "127.0.0.1"
    port: int = 0  # 0: ephemeral
    speed: float = 1.0  # simulated ms per real ms for candle replay
    start_ms: int | None = None  # simulated start; default: first candle of the data
    end_ms: int | None = None  # replay stops emitting klines at this sim time
    symbols: tuple[str, ...] = ()  # restrict to these unified symbols (default: all found)
    timeframes: tuple[str, ...] = ()  # restrict candle files to these timeframes
    kline_updates: int = 1  # x=false kline pushes per candle before the closing x=true one
    book_speed: float = 1.0  # speed-up of the recorded order-book traffic
    book_replay: bool = True  # replay ../orderbook recordings (served verbatim)
    # "recentred": the recorded book's shape around the replayed candle price (one price and
    # one clock everywhere); "recorded": the raw 2024 recording, verbatim; "synthetic": a
    # ladder around the candle price. Symbols without a recording always get the ladder.
    matching_book: str = "recentred"
    synthetic_spread_bps: float = 2.0  # synthetic book (symbols without a recording)
    synthetic_levels: int = 20
    synthetic_level_qty: float = 5.0  # base units per synthetic level
    taker_fee: float = 0.001
    maker_fee: float = 0.001
    api_key: str = "sim-key"
    api_secret: str = "sim-secret"
    balances: dict[str, float] = field(default_factory=lambda: {"USDT": 100_000.0})
    recv_window_check: bool = False  # check timestamps against sim time (only sane at speed 1)
    faults: FaultSettings = field(default_factory=FaultSettings)
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    trades_per_bar: int = 60  # the public trade tape drawn along each candle's price path
