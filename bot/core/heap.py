"""The process's long-lived objects, out of the cyclic garbage collector's way.

A daemon's start-up builds what lives as long as the process (models, markets, warmed
buffers, modules). Left in the collector's generations, every full collection scans them
again: with the ensemble loaded, such collections took 0.2-0.5 s each, on whichever live bar
they fell. :func:`freeze_long_lived` collects, then moves everything alive into the permanent
generation (``gc.freeze``), which collections skip. Called again when the long-lived set
changes (a model swapped in), it first gives what was frozen back to the collector, so that
what the change let go (the old model) is still collected.
"""

from __future__ import annotations

import gc


def freeze_long_lived() -> None:
    gc.unfreeze()
    gc.collect()
    gc.freeze()
