"""structlog, configured once, in the entry point.

JSON lines when the output is not a terminal (a daemon under systemd) or when
asked; readable console lines in a terminal. Every line carries ``run_id`` and
``mode`` (bound as context variables); secrets never reach a log line.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import structlog

_SENSITIVE = ("secret", "api_key", "apikey", "token", "password", "signature")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(s in key.lower() for s in _SENSITIVE):
            event[key] = "**********"
    return event


#: The last log lines (redacted event dicts), for the cockpit's log tail (``/api/v1/logs``).
RECENT: deque[dict[str, Any]] = deque(maxlen=500)


def _remember(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    RECENT.append({k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v)
                   for k, v in event.items()})
    return event


def recent_logs(n: int) -> list[dict[str, Any]]:
    """The last ``n`` log lines, oldest first."""
    return list(RECENT)[-n:] if n > 0 else []


class _CurrentStderr:
    """Writes each line to ``sys.stderr`` as it is at that moment (it may be swapped after set-up)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure_logging(
    level: str = "INFO", fmt: str = "auto", run_id: str = "", mode: str = "", stream: Any = None
) -> None:
    factory: Any = structlog.PrintLoggerFactory(file=stream) if stream is not None else (
        lambda *args: _CurrentStderr())
    stream = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            _remember,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, mode=mode)
