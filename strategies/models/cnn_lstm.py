"""CNN-LSTM hybrid: 1-D convolutions extract local patterns, an LSTM models their sequence."""

from __future__ import annotations

import torch
from torch import nn

from strategies.models.lstm import LSTMNet
from strategies.models.torch_base import TorchModel


class CNNLSTMNet(nn.Module):
    def __init__(
        self, n_features: int, channels: tuple[int, ...], kernel: int, hidden: tuple[int, ...],
        dropout: float, dense: tuple[int, ...],
    ) -> None:
        super().__init__()
        convs: list[nn.Module] = []
        c = n_features
        for ch in channels:
            convs += [nn.Conv1d(c, ch, kernel, padding="same"), nn.ReLU(), nn.Dropout(dropout)]
            c = ch
        self.conv = nn.Sequential(*convs)
        self.rnn = LSTMNet(c, hidden, dropout, dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [n, T, F]
        z = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.rnn(z)


class CNNLSTMModel(TorchModel):
    def build_module(self) -> nn.Module:
        s = self.spec
        return CNNLSTMNet(self.n_features, s.conv_channels, s.kernel_size, s.hidden, s.dropout, s.dense)
