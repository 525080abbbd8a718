"""``fast_init``: every event (and the risk context) is built exactly as its dataclass's own
``__init__`` would build it: the same fields, defaults, fresh factory defaults, signature and errors."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import MISSING, dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import events
from bot.core.fast_init import fast_init
from risk.limits import RiskContext

FAST = sorted((c for c in vars(events).values() if dataclasses.is_dataclass(c) and isinstance(c, type)),
              key=lambda c: c.__name__) + [RiskContext]


def _twin(cls: type) -> type:
    """``cls`` as plain ``@dataclass(frozen=True, slots=True)`` makes it: the ordinary path."""
    spec = []
    for f in dataclasses.fields(cls):
        kw: dict[str, Any] = {"compare": f.compare, "repr": f.repr}
        if f.default is not MISSING:
            kw["default"] = f.default
        elif f.default_factory is not MISSING:
            kw["default_factory"] = f.default_factory
        spec.append((f.name, f.type, field(**kw)))
    return dataclasses.make_dataclass(cls.__name__, spec, frozen=True, slots=True)


TWINS = {cls: _twin(cls) for cls in FAST}
value = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _state(obj: object) -> tuple[Any, ...]:
    return tuple((f.name, type(getattr(obj, f.name)), getattr(obj, f.name)) for f in dataclasses.fields(obj))


def test_every_event_and_the_risk_context_take_the_fast_init() -> None:
    assert len(FAST) > 10
    for cls in FAST:
        assert "__setattr__" not in cls.__init__.__code__.co_names  # the plain init sets by object.__setattr__
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_signature_is_the_dataclass_s(cls: type) -> None:
    fast, plain = inspect.signature(cls.__init__).parameters, inspect.signature(TWINS[cls].__init__).parameters
    assert [(p.name, p.kind) for p in fast.values()] == [(p.name, p.kind) for p in plain.values()]
    for f in dataclasses.fields(cls):
        if f.default is not MISSING:
            assert fast[f.name].default is f.default
        else:
            assert (fast[f.name].default is inspect.Parameter.empty) is (f.default_factory is MISSING)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_built_as_the_dataclass_builds_it(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(FAST), label="class")
    fs = dataclasses.fields(cls)
    required = sum(f.default is MISSING and f.default_factory is MISSING for f in fs)
    n = data.draw(st.integers(required, len(fs)), label="arguments given")
    values = data.draw(st.lists(value, min_size=n, max_size=n), label="values")
    by_name = data.draw(st.integers(0, n), label="first given by name")
    args, kwargs = values[:by_name], {f.name: v for f, v in zip(fs[by_name:n], values[by_name:], strict=True)}
    fast, plain = cls(*args, **kwargs), TWINS[cls](*args, **kwargs)
    assert _state(fast) == _state(plain)
    assert repr(fast) == repr(plain)
    assert fast == cls(*args, **kwargs) == dataclasses.replace(fast) == pickle.loads(pickle.dumps(fast))
    for f in fs[n:]:  # defaults: factories make a fresh object per instance
        if f.default_factory is not MISSING:
            assert getattr(fast, f.name) is not getattr(cls(*args, **kwargs), f.name)


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_wrong_arguments_raise_as_the_dataclass_does(cls: type) -> None:
    fs = dataclasses.fields(cls)
    for args, kwargs in (((), {}), ((0,) * (len(fs) + 1), {}), ((0,) * len(fs), {"no_such_field": 1}),
                         ((0,) * len(fs), {fs[0].name: 1})):
        with pytest.raises(TypeError):
            TWINS[cls](*args, **kwargs)
        with pytest.raises(TypeError):
            cls(*args, **kwargs)
    built = cls(*(0,) * len(fs))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, fs[0].name, 1)


def test_only_what_the_plain_init_does_is_taken() -> None:
    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int = field(default=0, init=False)

    for cls in (NoSlots, NotFrozen, PostInit, KeywordOnly, NotInInit, int):
        with pytest.raises(TypeError):
            fast_init(cls)
