"""``neuralbot run`` survives a SIGHUP from its first instant.

Importing the bot takes about a second, and Python's default SIGHUP action ends the
process (exit 129, which systemd counts as clean). ``remember_sighup()`` runs before
those imports; until the daemon's event loop takes the signal over, a SIGHUP is only
remembered, and the daemon reloads its configuration once it has started.
"""

from __future__ import annotations

import signal
from types import FrameType

_pending = False


def _remember(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True


def remember_sighup() -> None:
    signal.signal(signal.SIGHUP, _remember)


def early_sighup_pending() -> bool:
    """Whether a SIGHUP arrived before the daemon handled it (cleared by reading)."""
    global _pending
    pending, _pending = _pending, False
    return pending
