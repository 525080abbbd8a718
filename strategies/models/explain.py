"""Per-signal explanations: which features drove the decision, and by how much.

* Networks (:class:`~strategies.models.torch_base.TorchModel`): **integrated
  gradients** of the calibrated P(up) with respect to the RAW input window,
  from a baseline window (default: every feature at its training mean, i.e. the
  normaliser's mean: the "average market"). The path integral is evaluated with
  Gauss-Legendre quadrature; completeness (attributions sum to
  ``f(x) - f(baseline)``) holds to quadrature accuracy and is tested.
* Gradient boosting: trees have no gradients, so per-signal attributions use
  **occlusion** (set one feature, across the whole window, to its baseline value
  and measure the change in P(up)); :func:`permutation_importance` gives the
  global, dataset-level importance for reports.

Attributions are summed over the time steps of the window to one value per
feature; :func:`shares` turns them into signed shares whose absolute values sum
to 1, and :func:`top_shares` keeps the largest for storage with the Signal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from strategies.models.base import Model
from strategies.models.torch_base import TorchModel
from strategies.features.windows import Windows


@functools.lru_cache(maxsize=8)  # a handful of step counts; each explanation asked again
def _gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1.0) / 2.0, weights / 2.0  # mapped to [0, 1]


def integrated_gradients(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: np.ndarray,
    baseline: np.ndarray | None = None,
    steps: int = 32,
) -> np.ndarray:
    """IG attributions of ``forward`` (batch ``[m, ...] -> [m]``) at one input ``x``.

    Returns an array shaped like ``x`` whose sum approximates
    ``forward(x) - forward(baseline)``.
    """
    return batch_integrated_gradients(forward, np.asarray(x)[None], baseline, steps)[0]


def batch_integrated_gradients(
    forward: Callable[[torch.Tensor], torch.Tensor],
    xs: np.ndarray,
    baseline: np.ndarray | None = None,
    steps: int = 32,
) -> np.ndarray:
    """:func:`integrated_gradients` of each of ``xs`` (``[n, ...]``), all in one forward pass."""
    x64 = np.array(xs, dtype=np.float64)  # a writable copy (inputs may be read-only views)
    base = np.zeros_like(x64) if baseline is None else np.broadcast_to(baseline, x64.shape).astype(np.float64)
    alphas, weights = _gauss_legendre(steps)
    xt = torch.as_tensor(x64)
    bt = torch.as_tensor(base)
    a = torch.as_tensor(alphas).reshape((-1,) + (1,) * x64.ndim)  # [steps, 1, ...]
    path = (bt + a * (xt - bt)).reshape((-1,) + x64.shape[1:]).clone().requires_grad_(True)
    out = forward(path)
    (grads,) = torch.autograd.grad(out.sum(), path)
    avg = (grads.reshape((steps,) + x64.shape) * torch.as_tensor(weights).reshape(a.shape)).sum(dim=0)
    return ((xt - bt) * avg).detach().numpy()


def model_baseline(model: Model) -> np.ndarray:
    """Default baseline window ``[window, F]``: each feature at its training mean."""
    return np.broadcast_to(model.normalizer.mean, (model.window, model.n_features)).astype(np.float64)


def torch_attributions(
    model: TorchModel, window: np.ndarray, baseline: np.ndarray | None = None, steps: int = 32
) -> np.ndarray:
    """Per-feature IG attributions ``[F]`` of P(up) for one raw window ``[T, F]``."""
    return _torch_attributions(model, np.asarray(window)[None], baseline, steps)[0]


def _torch_attributions(
    model: TorchModel, windows: np.ndarray, baseline: np.ndarray | None, steps: int
) -> np.ndarray:
    base = model_baseline(model) if baseline is None else baseline
    was_training = model.module.training
    model.module.eval()
    try:
        with torch.enable_grad():
            ig = batch_integrated_gradients(lambda z: model.forward_proba(z.float()).double(),
                                            windows, base, steps)
    finally:
        model.module.train(was_training)
    return ig.sum(axis=1)


def occlusion_attributions(
    model: Model, window: np.ndarray, baseline: np.ndarray | None = None
) -> np.ndarray:
    """Per-feature ``f(x) - f(x with feature j at baseline)`` ``[F]``, one batched predict."""
    return _occlusion_attributions(model, np.asarray(window)[None], baseline)[0]


def _occlusion_attributions(model: Model, windows: np.ndarray, baseline: np.ndarray | None) -> np.ndarray:
    x = np.asarray(windows, dtype=np.float64)
    n, _, f = x.shape
    base = model_baseline(model) if baseline is None else np.broadcast_to(baseline, x.shape[1:])
    batch = np.repeat(x[:, None], f + 1, axis=1)  # [n, 1 + F, T, F]: the window, then one per feature
    for j in range(f):
        batch[:, j + 1, :, j] = base[:, j]
    out = model.predict(batch.reshape((n * (f + 1),) + x.shape[1:])).reshape(n, f + 1)
    return out[:, :1] - out[:, 1:]


def attributions(model: Model, window: np.ndarray, steps: int = 32) -> np.ndarray:
    """IG for networks, occlusion for everything else; ``[F]`` in probability units."""
    return batch_attributions(model, np.asarray(window)[None], steps)[0]


def batch_attributions(
    model: Model, windows: Sequence[np.ndarray] | np.ndarray, steps: int = 32, chunk: int = 16
) -> np.ndarray:
    """:func:`attributions` of many raw windows (each ``[T, F]``) -> ``[n, F]``, ``chunk`` per pass."""
    out = []
    for i in range(0, len(windows), chunk):
        part = np.stack(windows[i : i + chunk])
        if isinstance(model, TorchModel):
            out.append(_torch_attributions(model, part, None, steps))
        else:
            out.append(_occlusion_attributions(model, part, None))
    return np.concatenate(out) if out else np.zeros((0, model.n_features))


def permutation_importance(
    model: Model, windows: Windows, n_repeats: int = 3, seed: int = 0, max_windows: int = 2000
) -> np.ndarray:
    """Global importance ``[F]``: rise in log loss when feature j is shuffled across windows."""
    rng = np.random.default_rng(seed)
    sel = np.arange(len(windows))[-max_windows:]
    x = windows.x(sel).astype(np.float64)
    y = windows.y[sel].astype(np.float64)

    def loss(xx: np.ndarray) -> float:
        p = np.clip(model.predict(xx), 1e-7, 1 - 1e-7)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    base = loss(x)
    out = np.zeros(x.shape[2])
    for j in range(x.shape[2]):
        total = 0.0
        for _ in range(n_repeats):
            xp = x.copy()
            xp[:, :, j] = xp[rng.permutation(len(xp)), :, j]
            total += loss(xp) - base
        out[j] = total / n_repeats
    return out


def combine(per_model: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of per-model attribution vectors (as the combined P is a weighted mean)."""
    total = sum(weights.get(m, 0.0) for m in per_model) or 1.0
    out = np.zeros_like(np.asarray(next(iter(per_model.values())), dtype=np.float64))
    for m, a in per_model.items():
        out += np.asarray(a, dtype=np.float64) * (weights.get(m, 0.0) / total)
    return out


def shares(values: np.ndarray, columns: Sequence[str]) -> dict[str, float]:
    """Signed shares ``a_j / sum |a|`` (absolute values sum to 1); all-zero input -> zeros."""
    v = np.asarray(values, dtype=np.float64)
    denom = float(np.sum(np.abs(v)))
    if denom <= 0 or not np.isfinite(denom):
        return {c: 0.0 for c in columns}
    return {c: float(x / denom) for c, x in zip(columns, v, strict=True)}


def top_shares(values: np.ndarray, columns: Sequence[str], k: int = 5, digits: int = 4) -> dict[str, float]:
    """The ``k`` largest shares by magnitude, largest first, rounded for storage."""
    s = shares(values, columns)
    best = sorted(s.items(), key=lambda kv: -abs(kv[1]))[:k]
    return {c: round(v, digits) for c, v in best if v != 0.0}
