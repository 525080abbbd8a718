"""Transformer encoder with self-attention over the window.

Features are projected to ``d_model``, a learned positional embedding is added,
``n_layers`` pre-norm encoder layers (dropout on projections and feed-forward,
not on attention weights) attend over all steps of the (past-only)
window, and the last step's token concatenated with the mean over steps feeds
the dense head.
"""

from __future__ import annotations

import torch
from torch import nn

from strategies.models.torch_base import TorchModel, dense_head


class TransformerNet(nn.Module):
    def __init__(
        self, n_features: int, window: int, d_model: int, n_heads: int, n_layers: int,
        ff_dim: int, dropout: float, dense: tuple[int, ...],
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(n_features, d_model)
        self.pos = nn.Parameter(torch.randn(window, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, ff_dim, dropout, batch_first=True, norm_first=True
        )
        # No dropout on the attention weights: on CPU its Bernoulli mask over
        # [batch, heads, T, T] costs as much as the attention itself.
        layer.self_attn.dropout = 0.0
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)
        self.head = dense_head(2 * d_model, dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.proj(x) + self.pos[: x.shape[1]])
        h = self.norm(h)
        pooled = torch.cat([h[:, -1], h.mean(dim=1)], dim=-1)
        return self.head(self.drop(pooled)).squeeze(-1)


class TransformerModel(TorchModel):
    def build_module(self) -> nn.Module:
        s = self.spec
        return TransformerNet(
            self.n_features, s.window, s.d_model, s.n_heads, s.n_layers, s.ff_dim, s.dropout, s.dense
        )
