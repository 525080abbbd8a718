"""Binance's error answers: ``{"code": <negative int>, "msg": "..."}`` with an HTTP status."""

from __future__ import annotations


class OrderError(Exception):
    """A request Binance would refuse; ``status`` is the HTTP status of the answer."""

    def __init__(self, code: int, msg: str, status: int = 400,
                 retry_after: int | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status
        self.retry_after = retry_after  # seconds, for the 429/418 answers

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> OrderError:
    return OrderError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required(name: str) -> OrderError:
    return OrderError(-1106, f"Parameter '{name}' sent when not required.")
