"""A torch module's forward for one live window, as a TorchScript trace.

A live bar predicts one ``[1, window, F]`` window per model: the network's arithmetic is
tiny, and much of an eager forward is Python around it (``nn.Module.__call__``, the
argument checks of ``nn.LSTM`` and of the transformer encoder's fast path). A trace
records the aten operations that eager forward dispatches for that input shape and replays
them without the Python: the same kernels on the same inputs, so the same values bit for bit
(tested against eager on the trained models' windows), in ~60-80 % of the time.

The trace shares the module's parameters (in-place updates such as ``load_state_dict`` are
seen) and is run with TorchScript's optimisations off: no profiling runs, no fusion, only
the recorded operations (tracing costs ~25 ms per model, paid on the first live window).
It stands for one module object, input shape and dtype; anything else traces again.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


class TracedForward:
    """``module(x)`` for inputs shaped like ``x`` (eval mode, no autograd: call it under
    ``torch.inference_mode``)."""

    __slots__ = ("module", "shape", "dtype", "_script")

    def __init__(self, module: nn.Module, x: torch.Tensor) -> None:
        self.module, self.shape, self.dtype = module, tuple(x.shape), x.dtype
        with warnings.catch_warnings(), torch.jit.optimized_execution(False):
            # the tracer's notes on shape checks frozen for this shape, and torch.jit's deprecation
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            self._script = torch.jit.trace(module, x, check_trace=False)

    def fits(self, module: nn.Module, x: torch.Tensor) -> bool:
        return module is self.module and tuple(x.shape) == self.shape and x.dtype == self.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            out: torch.Tensor = self._script(x)
        return out
