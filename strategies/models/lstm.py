"""Stacked LSTM classifier/regressor.

Each entry of ``spec.hidden`` is one LSTM layer (sizes may differ, as in the
article's 128 -> 64), followed by dropout; the last layer's final hidden state
(both directions when ``bidirectional``) feeds a ReLU dense head and one output
unit (a logit for classification: sigmoid is applied outside the module).
"""

from __future__ import annotations

import torch
from torch import nn

from strategies.models.torch_base import TorchModel, dense_head


class LSTMNet(nn.Module):
    def __init__(
        self, n_features: int, hidden: tuple[int, ...], dropout: float, dense: tuple[int, ...],
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        mult = 2 if bidirectional else 1
        self.lstms = nn.ModuleList()
        d = n_features
        for h in hidden:
            self.lstms.append(nn.LSTM(d, h, batch_first=True, bidirectional=bidirectional))
            d = h * mult
        self.drop = nn.Dropout(dropout)
        self.bidirectional = bidirectional
        self.head = dense_head(d, dense)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h_n = None
        for lstm in self.lstms:
            x, (h_n, _) = lstm(x)
            x = self.drop(x)
        assert h_n is not None
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.bidirectional else h_n[-1]
        return self.drop(last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x)).squeeze(-1)


class LSTMModel(TorchModel):
    def build_module(self) -> nn.Module:
        s = self.spec
        return LSTMNet(self.n_features, s.hidden, s.dropout, s.dense, s.bidirectional)
