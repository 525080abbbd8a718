"""The model zoo: LSTM, CNN-LSTM, Transformer (torch) and a gradient-boosting baseline, by kind."""

from __future__ import annotations

from strategies.models.spec import ModelSpec
from strategies.models.base import Model
from strategies.models.cnn_lstm import CNNLSTMModel
from strategies.models.gbm import GBMModel
from strategies.models.lstm import LSTMModel
from strategies.models.transformer import TransformerModel
from strategies.features.windows import Normalizer

MODEL_CLASSES: dict[str, type[Model]] = {
    "lstm": LSTMModel,
    "cnn_lstm": CNNLSTMModel,
    "transformer": TransformerModel,
    "gbm": GBMModel,
}


def build_model(spec: ModelSpec, n_features: int, normalizer: Normalizer | None = None) -> Model:
    return MODEL_CLASSES[spec.kind](spec, n_features, normalizer)
