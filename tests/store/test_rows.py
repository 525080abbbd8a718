"""Queued rows: a decision's intent JSON is byte for byte what ``json.dumps(..., default=str)`` gives."""

from __future__ import annotations

import json
from dataclasses import fields

from hypothesis import given
from hypothesis import strategies as st

from bot.core.events import OrderDenied, OrderIntent, OrderType, Side
from bot.store.rows import decision_row

text = st.text(max_size=12)  # any unicode: the encoder escapes it as json.dumps does
number = st.floats(allow_nan=True, allow_infinity=True)
intents = st.builds(OrderIntent, text, text, text, st.sampled_from(Side), number, st.sampled_from(OrderType),
                    st.one_of(st.none(), number), st.booleans(), st.one_of(st.none(), number),
                    st.one_of(st.none(), number), number, st.integers(-2**63, 2**63 - 1), text)


@given(intent=intents, denied=st.booleans())
def test_intent_json_is_json_dumps_with_default_str(intent: OrderIntent, denied: bool) -> None:
    denial = OrderDenied(intent.intent_id, intent.symbol, "min_strength", "too weak", intent.ts) if denied else None
    _, params = decision_row("p", intent, denial)
    plain = json.dumps({f.name: getattr(intent, f.name) for f in fields(intent)}, default=str)
    assert params[-1] == plain
    assert params[4:7] == ((0, "min_strength", "too weak") if denied else (1, None, None))
