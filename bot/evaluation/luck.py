"""Every strategy that ``walkforward`` or ``evaluate`` scores goes into the trial ledger, and its
scores gain the statistics that need the ledger: the probabilistic Sharpe ratio and the
deflated Sharpe ratio over every configuration ever tried on the same series."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bot.evaluation.overfitting import DSR_FLAG_BELOW, sharpe_per_period, sharpe_stats
from bot.evaluation.trial import outcome, slice_record
from bot.store.trials import TrialLedger, TrialRecord, data_hash


def settings_digest(settings: Any) -> str:
    """What identifies a configuration: everything but where it stores and logs."""
    data = settings.redacted()
    for key in ("store", "logging", "health", "notify", "daemon", "compute", "hyperopt"):
        data.pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def record_and_deflate(settings: Any, evals: Sequence[Any], source: str) -> None:
    """Append each evaluated strategy to the ledger; add psr/dsr/n_trials/luck_flag to its scores."""
    asyncio.run(_go(settings, evals, source))


async def _go(settings: Any, evals: Sequence[Any], source: str) -> None:
    digest = settings_digest(settings)
    ledger = await TrialLedger.open(settings.store.path)
    try:
        for ev in evals:
            start = ev.walkforward.oos_start_ts
            keep = ev.close_ts >= start
            dhash = data_hash(ev.close_ts[keep], ev.close[keep])
            records = []
            for name, rec in ev.records.items():
                o = outcome(name, slice_record(rec, start))
                records.append(TrialRecord(source, source, "oos", name, ev.symbol, ev.timeframe,
                                           {"strategy": name, "settings": digest}, None,
                                           o.day_ts[0] if o.day_ts else 0, o.day_ts[-1] if o.day_ts else 0,
                                           dhash, o.returns, o.metrics, int(time.time() * 1000)))
            await ledger.add(records)
            series = await ledger.trials(symbol=ev.symbol, timeframe=ev.timeframe)
            universe = {r["params_hash"]: sharpe_per_period(np.nan_to_num(np.asarray(r["returns"])))
                        for r in series if r["span"] != "outer"}
            trial_sharpes = np.asarray(list(universe.values()))
            for r in records:
                st = sharpe_stats(np.asarray(r.returns), trial_sharpes)
                ev.scores[r.strategy].update({"psr": st.psr, "dsr": st.dsr, "n_trials": st.n_trials,
                                              "min_track_record_days": st.min_track_record,
                                              "luck_flag": not st.dsr >= DSR_FLAG_BELOW})
    finally:
        await ledger.close()
