"""One process owns a store's portfolio: an exclusive ``flock`` held for the process's life.

``StoreLock.acquire(store_path, portfolio)`` locks ``<store>.<portfolio>.lock`` next to
the SQLite file. The kernel drops the lock when the file descriptor closes, so it is
released on every exit, ``kill -9`` and crashes included: a stale lock file never blocks
the next start. A second owner is refused with :class:`StoreLocked`, which names the
process holding the lock (written into the file, for that message only).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any


class StoreLocked(RuntimeError):
    """Another live process owns this store and portfolio (``pid``: which, when known)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


def lock_path(store_path: Path | str, portfolio: str) -> Path:
    return Path(f"{store_path}.{re.sub(r'[^A-Za-z0-9_.-]', '_', portfolio)}.lock")


class StoreLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, store_path: Path | str, portfolio: str, **owner: Any) -> StoreLock:
        """Lock the store's portfolio for this process, or raise ``StoreLocked``."""
        path = lock_path(store_path, portfolio)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_owner(fd)
            os.close(fd)
            pid = holder.get("pid")
            raise StoreLocked(
                f"store {store_path}: portfolio {portfolio!r} already runs in pid {pid or '?'}"
                f" (run {holder.get('run_id', '?')}); stop that daemon first, or set another"
                " store.path or store.portfolio", pid if isinstance(pid, int) else None) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), **owner}).encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_owner(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
