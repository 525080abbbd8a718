"""The bot's trading state: what kinds of orders may pass the gate."""

from __future__ import annotations

from enum import Enum


class TradingState(str, Enum):
    ACTIVE = "active"
    REDUCING = "reducing"  # no new entries; exits and stops keep working
    HALTED = "halted"  # nothing but an operator's flatten and protective stops; stays until an operator resumes
