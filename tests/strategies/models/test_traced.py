"""A live window's traced forward (``Model.predict_one``) gives eager ``predict``'s values bit for bit."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from strategies.features.windows import Normalizer
from strategies.models.calibration import TemperatureScaler
from strategies.models.spec import ModelSpec, default_models
from strategies.models.torch_base import TorchModel
from strategies.models.zoo import build_model

torch.set_num_threads(1)

N_FEATURES = 7
TORCH_SPECS = [s for s in default_models() if s.kind != "gbm"]


def model_of(spec: ModelSpec, seed: int = 0) -> TorchModel:
    rng = np.random.default_rng(seed)
    m = build_model(spec.model_copy(update={"seed": seed}), N_FEATURES,
                    Normalizer(rng.normal(size=N_FEATURES), rng.uniform(0.5, 2.0, N_FEATURES)))
    assert isinstance(m, TorchModel)
    m.calibrator = TemperatureScaler(0.7)
    return m


def windows(spec: ModelSpec, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=2.0, size=(n, 1, spec.window, N_FEATURES))


@pytest.mark.parametrize("spec", TORCH_SPECS, ids=lambda s: s.name)
def test_predict_one_is_eager_predict_bit_for_bit(spec: ModelSpec) -> None:
    m = model_of(spec)
    for x in windows(spec, 60):
        xn = m.normalizer.transform(x)
        assert np.array_equal(m._raw_one(xn), m._raw_output(xn))  # the logits themselves
        assert m.predict_one(x) == float(m.predict(x)[0])
    assert m._trace is not None  # traced once, then reused
    assert m.predict_one(x[0]) == float(m.predict(x)[0])  # one [window, F] window too


@pytest.mark.parametrize("spec", TORCH_SPECS[:1], ids=lambda s: s.name)
def test_trace_follows_new_weights_and_train_mode(spec: ModelSpec) -> None:
    m, other = model_of(spec, seed=0), model_of(spec, seed=5)
    x = windows(spec, 1)[0]
    before = m.predict_one(x)
    m.set_state(other.get_state())  # in place (load_state_dict): the trace shares the parameters
    assert m._trace is not None
    assert m.predict_one(x) == float(m.predict(x)[0]) != before
    m.module.train()  # dropout on: the live path predicts in eval mode, as predict does
    assert m.predict_one(x) == float(m.predict(x)[0]) and not m.module.training


@pytest.mark.parametrize("spec", TORCH_SPECS[:1], ids=lambda s: s.name)
def test_copies_trace_their_own_module(spec: ModelSpec) -> None:
    m = model_of(spec)
    x = windows(spec, 1)[0]
    p = m.predict_one(x)
    for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert twin._trace is None
        assert twin.predict_one(x) == p
        assert twin._trace is not None and twin._trace.module is twin.module


def test_predict_one_takes_one_window() -> None:
    spec = TORCH_SPECS[0]
    with pytest.raises(ValueError, match="one window"):
        model_of(spec).predict_one(windows(spec, 2)[:, 0])
