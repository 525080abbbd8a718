"""Shared machinery of the torch models: normalisation inside the graph, state, fit.

``forward_logits(x)`` maps a RAW window tensor ``[n, T, F]`` to pre-sigmoid logits
``[n]`` differentiably (normalisation and clipping are done in torch), so
integrated gradients can be taken with respect to raw features.
``forward_proba`` applies the temperature of a temperature calibrator (isotonic
calibration is not differentiable; there the uncalibrated sigmoid is returned).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn

from strategies.models.calibration import TemperatureScaler
from strategies.models.fit_loop import fit_torch
from strategies.models.spec import ModelSpec
from strategies.models.base import FitReport, Model, ValidationScore
from strategies.models.traced import TracedForward
from strategies.features.windows import Normalizer, Windows



def dense_head(in_dim: int, dense: tuple[int, ...], out_dim: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for d in dense:
        layers += [nn.Linear(in_dim, d), nn.ReLU()]
        in_dim = d
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class TorchModel(Model):
    _trace: TracedForward | None = None  # the live window's forward (:meth:`_raw_one`)

    def __init__(self, spec: ModelSpec, n_features: int, normalizer: Normalizer | None = None) -> None:
        super().__init__(spec, n_features, normalizer)
        torch.manual_seed(spec.seed)
        self.module: nn.Module = self.build_module()
        self.module.eval()

    @abstractmethod
    def build_module(self) -> nn.Module:
        """The network: ``[n, T, F]`` normalised float32 -> ``[n]`` logits / values."""

    # -- differentiable paths (for integrated gradients) ---------------------------
    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.normalizer.mean, dtype=x.dtype)
        std = torch.as_tensor(self.normalizer.std, dtype=x.dtype)
        z = torch.nan_to_num((x - mean) / std, nan=0.0)
        z = torch.clamp(z, -self.normalizer.clip, self.normalizer.clip)
        return self.module(z.float())

    def forward_proba(self, x: torch.Tensor) -> torch.Tensor:
        t = self.calibrator.temperature if isinstance(self.calibrator, TemperatureScaler) else 1.0
        return torch.sigmoid(self.forward_logits(x) / t)

    # -- Model API ------------------------------------------------------------------
    def _raw_output(self, xn: np.ndarray) -> np.ndarray:
        if self.module.training:  # eval() walks every submodule: not on each prediction
            self.module.eval()
        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(xn, dtype=np.float32)))
        return out.double().numpy()

    def _raw_one(self, xn: np.ndarray) -> np.ndarray:
        """The live window through a trace of the module (:mod:`strategies.models.traced`):
        the same values as :meth:`_raw_output`, without nn.Module's per-call Python."""
        if self.module.training:
            self.module.eval()
        x = torch.from_numpy(np.ascontiguousarray(xn, dtype=np.float32))
        with torch.inference_mode():  # traced as eager runs: no autograd (the transformer's fast path)
            trace = self._trace
            if trace is None or not trace.fits(self.module, x):
                trace = self._trace = TracedForward(self.module, x)
            out = trace(x)
        return out.double().numpy()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled / deep-copied without the trace (a copy traces its own module again)."""
        return {k: v for k, v in self.__dict__.items() if k != "_trace"}

    def fit(self, train: Windows, val: Windows, progress: bool = False,
            select: ValidationScore | None = None) -> FitReport:
        return fit_torch(self, train, val, progress, select)

    def get_state(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def set_state(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
        self.module.eval()

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())
