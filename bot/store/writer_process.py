"""The parent's end of the store writer's process (:mod:`bot.store.writer_child`).

Started by the first transaction handed to it, on the writer's thread, and used by that thread
alone. A transaction's failure in the process is raised here as the same exception (an
``sqlite3`` error keeps its class, message and error code): it was rolled back there, nothing of
it is written, and the caller queues its rows again. A process that ends with a transaction in
flight leaves unknown whether that transaction was committed, so the writer fails closed from
then on: every later transaction raises :class:`StoreError` (a restart reconciles with the
exchange and resumes from what the store holds).
"""

from __future__ import annotations

import io
import pickle
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.store import writer_child
from bot.store.schema import BUSY_TIMEOUT_MS, StoreError

CHILD = Path(writer_child.__file__).resolve()
EXIT_WAIT_S = 10.0  # for the process to end after its stdin closed (it finishes a transaction first)
# what a failure in the process is raised as here, by class name; anything else is a StoreError
_RAISED_AS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        sqlite3.Error, sqlite3.InterfaceError, sqlite3.DatabaseError, sqlite3.DataError,
        sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.InternalError,
        sqlite3.ProgrammingError, sqlite3.NotSupportedError, OverflowError, TypeError, ValueError,
        MemoryError,
    )
}


def available() -> bool:
    """Whether this interpreter can start the process (an embedding one may have no executable)."""
    return bool(sys.executable)


class WriterProcess:
    def __init__(self, database: str, uri: bool) -> None:
        self._argv = [sys.executable, "-I", "-S", str(CHILD), database, "1" if uri else "0",
                      str(BUSY_TIMEOUT_MS)]
        self._proc: subprocess.Popen[bytes] | None = None
        self._broken: str | None = None  # why no transaction may be written any more

    def transaction(self, batches: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Write ``batches`` in one transaction in the process; raises what failed there."""
        if self._broken is not None:
            raise StoreError(self._broken)
        proc = self._proc or self._start()
        assert proc.stdin is not None and proc.stdout is not None
        data = _pickled(batches)  # before anything is sent: a value it refuses fails here
        try:
            writer_child.send_pickled(proc.stdin, data)
            answer = writer_child.receive(proc.stdout)
        except (EOFError, OSError):  # it ended (killed): did the transaction commit before?
            self._broken = (f"the store's writer process ended (exit code {self._exit_code(proc)}) with a"
                            " transaction in flight; restart the bot (it resumes from the store)")
            raise StoreError(self._broken) from None
        if answer is not None:
            raise _rebuilt(answer)

    def close(self) -> None:
        """End the process (after the transaction it is writing); idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        try:
            writer_child.send(proc.stdin, None)
            proc.stdin.close()
        except OSError:
            pass  # it had ended already
        self._exit_code(proc)
        proc.stdout.close()

    def _start(self) -> subprocess.Popen[bytes]:
        try:  # a session of its own: Ctrl-C in the terminal reaches the parent, which flushes last
            self._proc = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:  # nothing was written: the next transaction tries again
            raise StoreError(f"cannot start the store's writer process: {exc}") from None
        return self._proc

    @staticmethod
    def _exit_code(proc: subprocess.Popen[bytes]) -> int | None:
        try:
            return proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


class _RowPickler(pickle.Pickler):
    """Pickles rows as ``sqlite3`` binds their values: the process imports nothing to load them.

    ``reducer_override`` is only asked about values that are not exactly a basic type: a subclass of
    float, int, str or bytes (a numpy float, an enum) becomes its plain value, taken as the
    base type holds it (an enum's characters, not its ``__str__``); anything else is refused with
    the ``sqlite3.ProgrammingError`` that binding it would raise."""

    def reducer_override(self, obj: Any) -> Any:
        if obj is float or obj is int or obj is str or obj is bytes:  # what the reductions below name
            return NotImplemented
        if isinstance(obj, float):
            return float, (float.__float__(obj),)
        if isinstance(obj, int):
            return int, (int.__int__(obj),)
        if isinstance(obj, str):
            return str, (str.__str__(obj),)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes, (bytes(obj),)
        raise sqlite3.ProgrammingError(f"Error binding parameter: type {type(obj).__name__!r} is not supported")


def _pickled(batches: Sequence[tuple[str, list[tuple[Any, ...]]]]) -> bytes:
    buffer = io.BytesIO()
    _RowPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(batches)
    return buffer.getvalue()


def _rebuilt(answer: tuple[str, str, int | None, str | None]) -> Exception:
    name, message, code, code_name = answer
    cls = _RAISED_AS.get(name)
    if cls is None:
        return StoreError(f"store write failed: {name}: {message}")
    exc = cls(message)
    if code is not None:
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        exc.sqlite_errorname = code_name  # type: ignore[attr-defined]
    return exc
