"""Feeds: where market events come from (replay of stored candles, or ccxt.pro live)."""

from __future__ import annotations

from bot.core.feed_port import Feed

__all__ = ["Feed"]
