"""Sums of every trailing window of a series, each bit-identical to summing the window alone.

``trailing_sums(x, n)[j] == np.add.reduce(x[j : j + n])`` for every ``j``: each window is a
C-contiguous row reduced along its own axis, which numpy sums with the same pairwise
algorithm (and so the same rounding) as the 1-D slice. Rows are copied in chunks, so the
memory used stays bounded whatever the length of the series.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_CHUNK_VALUES = 1 << 20  # float64 values copied at once (8 MiB)


def trailing_sums(x: np.ndarray, n: int) -> np.ndarray:
    """The sum of each window ``x[j : j + n]`` (``len(x) - n + 1`` of them; none if shorter)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    if n < 1:
        raise ValueError(f"window must be >= 1, got {n}")
    if len(x) < n:
        return np.empty(0)
    windows = sliding_window_view(x, n)
    rows = max(1, _CHUNK_VALUES // n)
    return np.concatenate([np.add.reduce(np.ascontiguousarray(windows[j : j + rows]), axis=1)
                           for j in range(0, len(windows), rows)])
