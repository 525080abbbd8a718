"""Freezing the long-lived heap (daemon start-up, model swaps) never keeps garbage alive for good."""

from __future__ import annotations

import gc
import weakref

from bot.core.heap import freeze_long_lived


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_what_a_later_freeze_let_go_is_collected() -> None:
    try:
        old = Node()
        alive = weakref.ref(old)
        freeze_long_lived()  # start-up: the old model is long-lived
        assert gc.get_freeze_count() > 0
        del old  # a swap lets it go: a cycle, frozen
        gc.collect()
        assert alive() is not None  # a frozen cycle outlives a collection...
        freeze_long_lived()  # ...until the swap freezes again
        assert alive() is None
    finally:
        gc.unfreeze()
