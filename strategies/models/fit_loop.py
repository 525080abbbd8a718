"""The torch training loop: AdamW mini-batches, early stopping, LR on plateau, augmentation.

Reproducible on CPU: the torch seed is set from ``spec.seed`` before the
network is built and again here; batch order and augmentation draw from a numpy
generator seeded per epoch. Class balancing weights the positive class by
``n_neg / n_pos`` (computed on the training split). Early stopping watches the
UNWEIGHTED validation loss and restores the best weights; with a
:class:`strategies.training.selection.ValidationScore` it watches the net-of-cost return per unit of
risk of the epoch's validation forecasts instead (ties: the lower loss).
"""

from __future__ import annotations

import copy
import time
from typing import Protocol

import numpy as np
import structlog
import torch
from torch import nn
from tqdm.auto import tqdm

from strategies.models.spec import ModelSpec
from strategies.models.base import PREDICT_BATCH, FitReport, ValidationScore
from strategies.features.windows import Normalizer, Windows


class Fittable(Protocol):
    """What the loop reads from the model it fits (``strategies.models.torch_base.TorchModel``);
    a regression fit sets its target standardisation ``y_mean`` / ``y_std``."""

    spec: ModelSpec
    module: nn.Module
    normalizer: Normalizer
    y_mean: float
    y_std: float

    @property
    def task(self) -> str: ...


log = structlog.get_logger(__name__)


def augment(x: np.ndarray, rng: np.random.Generator, noise: float, shift: int, scale: float) -> np.ndarray:
    """Augment a normalised batch ``[n, T, F]`` in place (returns it).

    * noise: add N(0, noise) to every value;
    * shift: jitter the window start: the oldest ``k ~ U{0..shift}`` steps are
      replaced by a repeat of step ``k`` (the recent end, which carries the label's
      information, is never moved);
    * scale: multiply each sample by a factor ~ N(1, scale).
    """
    n, t, _ = x.shape
    if shift > 0:
        ks = rng.integers(0, min(shift, t - 1) + 1, size=n)
        for i in np.nonzero(ks)[0]:
            x[i, : ks[i]] = x[i, ks[i]]
    if scale > 0:
        x *= rng.normal(1.0, scale, size=(n, 1, 1)).astype(np.float32)
    if noise > 0:
        x += rng.normal(0.0, noise, size=x.shape).astype(np.float32)
    return x


def _eval_loss(model: Fittable, w: Windows, loss_fn: nn.Module, y: np.ndarray,
               batch: int) -> tuple[float, np.ndarray]:
    """Mean validation loss and the raw outputs it was computed from."""
    model.module.eval()
    total = 0.0
    outs: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(w), batch):
            out = model.module(torch.from_numpy(w.x(slice(i, i + batch))))
            total += float(loss_fn(out, torch.from_numpy(y[i : i + batch]))) * len(out)
            outs.append(out.double().numpy())
    return total / max(len(w), 1), (np.concatenate(outs) if outs else np.zeros(0))


def fit_torch(model: Fittable, train: Windows, val: Windows, progress: bool = False,
              select: ValidationScore | None = None) -> FitReport:
    s = model.spec
    t0 = time.perf_counter()
    torch.manual_seed(s.seed)
    tr = train.subset(slice(None, None, s.stride))
    if s.max_train_windows and len(tr) > s.max_train_windows:
        tr = tr.subset(slice(len(tr) - s.max_train_windows, None))  # keep the most recent
    # Normalise each feature matrix once (stats fitted on train rows by the caller).
    trn = tr.with_features(model.normalizer.transform(tr.features))
    van = val.with_features(model.normalizer.transform(val.features))
    y_tr = tr.y.astype(np.float32)
    y_va = val.y.astype(np.float32)
    w_tr = np.ones(len(tr), dtype=np.float32) if tr.w is None else tr.w.astype(np.float32)
    if model.task == "classification":
        pos = float(y_tr.mean())
        pw = (1 - pos) / pos if s.class_balance and 0 < pos < 1 else 1.0
        train_loss_fn: nn.Module = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw), reduction="none")
        val_loss_fn: nn.Module = nn.BCEWithLogitsLoss()
    else:
        model.y_mean, model.y_std = float(y_tr.mean()), float(y_tr.std() or 1.0)
        y_tr = ((y_tr - model.y_mean) / model.y_std).astype(np.float32)
        y_va = ((y_va - model.y_mean) / model.y_std).astype(np.float32)
        train_loss_fn, val_loss_fn = nn.MSELoss(reduction="none"), nn.MSELoss()

    net = model.module
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=s.lr_factor, patience=s.lr_patience)
    best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(net.state_dict())
    best_key: tuple[float, float] = (-float("inf"), -float("inf"))
    train_losses: list[float] = []
    val_losses: list[float] = []
    val_nets: list[float] = []
    stale = 0
    bar = tqdm(total=s.epochs, desc=f"{s.name:>12}", disable=not progress, leave=True)
    for epoch in range(s.epochs):
        rng = np.random.default_rng([s.seed, epoch])
        order = rng.permutation(len(trn))
        net.train()
        total = 0.0
        for i in range(0, len(order), s.batch_size):
            sel = np.sort(order[i : i + s.batch_size])
            xb = trn.x(sel)
            if s.augment_noise or s.augment_shift or s.augment_scale:
                xb = augment(xb, rng, s.augment_noise, s.augment_shift, s.augment_scale)
            out = net(torch.from_numpy(xb))
            wb = torch.from_numpy(w_tr[sel])  # average-uniqueness sample weights (1 without)
            loss = (train_loss_fn(out, torch.from_numpy(y_tr[sel])) * wb).sum() / wb.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if s.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), s.grad_clip)
            opt.step()
            total += loss.item() * len(sel)
        train_losses.append(total / max(len(order), 1))
        vloss, raw = _eval_loss(model, van, val_loss_fn, y_va, PREDICT_BATCH)
        val_losses.append(vloss)
        sched.step(vloss)
        if select is not None and model.task == "classification":
            val_nets.append(select.of_logits(raw))
            key = (round(val_nets[-1], 9), -vloss)
            better = key[0] > best_key[0] or (key[0] == best_key[0] and vloss < best_loss - 1e-6)
        else:
            key, better = (0.0, -vloss), vloss < best_loss - 1e-6
        if better:
            best_key, best_loss, best_epoch, stale = key, vloss, epoch + 1, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            stale += 1
        bar.set_postfix(train=f"{train_losses[-1]:.4f}", val=f"{val_losses[-1]:.4f}",
                        lr=f"{opt.param_groups[0]['lr']:.1e}")
        bar.update(1)
        if stale >= s.patience:
            break
    bar.close()
    net.load_state_dict(best_state)
    net.eval()
    report = FitReport(
        epochs_run=len(val_losses), best_epoch=best_epoch, train_loss=tuple(train_losses),
        val_loss=tuple(val_losses), stopped_early=len(val_losses) < s.epochs,
        seconds=time.perf_counter() - t0, final_lr=float(opt.param_groups[0]["lr"]),
        extra={"val_net_sharpe": val_nets[best_epoch - 1]} if val_nets and best_epoch else {},
    )
    log.info("torch_fit", model=s.name, epochs=report.epochs_run, best_epoch=best_epoch,
             val_loss=round(best_loss, 5), seconds=round(report.seconds, 1))
    return report
