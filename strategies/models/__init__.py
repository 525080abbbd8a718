"""The model zoo: LSTM, CNN-LSTM, Transformer (torch) and a gradient-boosting baseline."""

from __future__ import annotations

from strategies.model_config import ModelSpec
from strategies.models.base import MODEL_API_VERSION, FitReport, Model
from strategies.models.cnn_lstm import CNNLSTMModel
from strategies.models.gbm import GBMModel
from strategies.models.lstm import LSTMModel
from strategies.models.torch_base import TorchModel
from strategies.models.transformer import TransformerModel
from strategies.windows import Normalizer

MODEL_CLASSES: dict[str, type[Model]] = {
    "lstm": LSTMModel,
    "cnn_lstm": CNNLSTMModel,
    "transformer": TransformerModel,
    "gbm": GBMModel,
}


def build_model(spec: ModelSpec, n_features: int, normalizer: Normalizer | None = None) -> Model:
    return MODEL_CLASSES[spec.kind](spec, n_features, normalizer)


__all__ = [
    "MODEL_API_VERSION", "MODEL_CLASSES", "FitReport", "Model", "TorchModel", "LSTMModel",
    "CNNLSTMModel", "TransformerModel", "GBMModel", "build_model",
]
