"""Combinations the kernel cannot build, each a small named check (as ``bot.config.checks``).

A check takes the settings, the mode being built and the feed handed in (or ``None``)
and returns ``(key path, message)`` for an impossible combination, or ``None``;
:func:`check_combination` raises one :class:`bot.config.settings.ConfigError` with every
problem, so the command line prints one line each (source, problem, fix) and exits 2.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from bot.config.settings import ConfigError
from bot.config.checks import live_requires_opt_in

if TYPE_CHECKING:
    from bot.config.settings import Settings

#: what the kernel builds: a finite replay (``backtest``, ``evaluation``: one strategy alone)
#: or a daemon trading a feed (``paper``, ``sandbox``, ``live``: ``Settings.mode``)
Mode = Literal["backtest", "evaluation", "paper", "sandbox", "live"]
MODES: tuple[str, ...] = ("backtest", "evaluation", "paper", "sandbox", "live")
REPLAY_MODES = ("backtest", "evaluation")
EXCHANGE_MODES = ("sandbox", "live")

Check = Callable[["Settings", str, Any], "tuple[str, str] | None"]


def mode_known(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    if mode not in MODES:
        near = difflib.get_close_matches(mode, MODES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return "mode", f"unknown mode {mode!r}{hint}; one of {', '.join(MODES)}"
    return None


def daemon_mode_is_the_configured_one(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    if mode in ("paper", *EXCHANGE_MODES) and mode != s.mode:
        return "mode", f'building a {mode} daemon from a configuration with mode = "{s.mode}"; set mode = "{mode}"'
    return None


def live_opt_in(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    return live_requires_opt_in(s) if mode == "live" else None


def exchange_modes_trade_an_exchange_feed(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    if mode in EXCHANGE_MODES and s.feed.source != "exchange":
        return ("feed.source", f'mode = "{mode}" trades on the exchange but feed.source = "{s.feed.source}"'
                ' replays recorded candles; set feed.source = "exchange"')
    return None


def replays_need_a_finite_feed(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    # a LiveFeed exists only once its module (ccxt.pro, aiohttp) is loaded: never imported for this
    live = sys.modules.get("bot.feeds.live")
    if mode in REPLAY_MODES and live is not None and isinstance(feed, live.LiveFeed):
        return ("feed", f"a {mode} replays recorded candles in simulated time; {type(feed).__name__} streams"
                " the exchange live: pass a ReplayFeed (or none: the candles of [data]), or run the daemon"
                " (neuralbot run)")
    return None


def ws_url_needs_http_url(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    if s.exchange.ws_url and not s.exchange.http_url and _connects(s, mode):
        return ("exchange.ws_url", "set alone it is ignored (the REST server decides the endpoints);"
                " set exchange.http_url to the same server too")
    return None


def exchange_known(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    if not _connects(s, mode):
        return None
    import ccxt.async_support as ccxt  # the class the client is built from

    if s.exchange.name not in ccxt.exchanges:
        near = difflib.get_close_matches(s.exchange.name, ccxt.exchanges, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        return "exchange.name", f"ccxt knows no exchange {s.exchange.name!r}; {hint}(see ccxt.exchanges)"
    return None


def sandbox_has_test_endpoints(s: Settings, mode: str, feed: Any) -> tuple[str, str] | None:
    if mode != "sandbox" or s.exchange.http_url:
        return None
    import ccxt.async_support as ccxt  # the class the client is built from

    cls = getattr(ccxt, s.exchange.name, None)
    if cls is not None and not cls().urls.get("test"):
        return ("exchange.http_url", f'mode = "sandbox" needs a test network, and {s.exchange.name} has none in'
                " ccxt; set exchange.http_url (and ws_url) to a test server, or use another exchange")
    return None


def _connects(s: Settings, mode: str) -> bool:
    """Whether the mode opens a ccxt client (an exchange feed or exchange orders)."""
    return mode in EXCHANGE_MODES or (mode == "paper" and s.feed.source == "exchange")


#: anything the kernel builds; in order: a later check may assume an earlier one passed
KERNEL_CHECKS: tuple[Check, ...] = (
    mode_known,
    daemon_mode_is_the_configured_one,
    live_opt_in,
    replays_need_a_finite_feed,
    ws_url_needs_http_url,
    exchange_known,
    sandbox_has_test_endpoints,
)
#: a daemon trading its feed as well (not the operator's halt, which only talks to the exchange:
#: a setting no daemon could run never keeps an operator from halting)
DAEMON_CHECKS: tuple[Check, ...] = (exchange_modes_trade_an_exchange_feed,)


def combination_problems(settings: Settings, mode: str, feed: Any = None,
                         daemon: bool = False) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for check in (*KERNEL_CHECKS, *(DAEMON_CHECKS if daemon else ())):
        problem = check(settings, mode, feed)
        if problem is not None:
            problems.append(problem)
            if check is mode_known or check is exchange_known:
                break  # the later checks would only repeat it
    return problems


def check_combination(settings: Settings, mode: str, feed: Any = None, source: str = "",
                      daemon: bool = False) -> None:
    """Raise :class:`ConfigError` naming every impossible combination of ``settings`` for ``mode``
    (``daemon``: also for a daemon trading its feed)."""
    problems = combination_problems(settings, mode, feed, daemon)
    if problems:
        raise ConfigError(problems, source or "configuration")
