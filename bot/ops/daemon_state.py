"""What a daemon reports in its state file (``[daemon] state_file``), read by ``neuralbot status``,
``halt`` and ``resume``: the trading state, and whether the daemon is still running."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def daemon_state(path: Path) -> dict[str, Any]:
    """The daemon's last state file, with ``running`` judged from its pid."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"state": "unknown", "running": False}
    running = data.get("status") not in ("stopped",) and _alive(int(data.get("pid", 0) or 0))
    return {"state": data.get("trading_state", "unknown") if running else "stopped", "running": running,
            "status": data.get("status"), "pid": data.get("pid"), "run_id": data.get("run_id"),
            "updated_ms": data.get("updated_ms"), "health_port": data.get("health_port"),
            "last_trading_state": data.get("trading_state")}
