"""Every TOML strategy example in docs/strategies.md loads, runs and trades in a short backtest."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest

from bot.kernel.compose import run_backtest
from bot.config.load import load_settings
from bot.store.store import Store
from strategies.catalog import KINDS
from tests.strategies.test_confluence import daily_models_dir
from tests.strategies.test_helpers import REPO, tiny_models_dir

DOC = REPO / "docs" / "strategies.md"
EXAMPLES = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
NAMES = [tomllib.loads(e)["strategies"][0]["name"] for e in EXAMPLES]
D = 86_400_000
# Daily models need 185 daily bars (ret_168 + a 16-bar window) before their first vote.
LONG_RUN = {"confluence_neural": ("2020-04-01", 5855)}
# Examples whose tiny test models never ask for an entry in the window (their combined
# P(up) or edge stays below the example's entry level): they must then stay without fills.
NO_ENTRY_ASKED = {"ensemble_1h", "neural_edge"}


def test_every_kind_has_an_example() -> None:
    kinds = {tomllib.loads(e)["strategies"][0]["kind"] for e in EXAMPLES}
    assert kinds == set(KINDS)


def _workdir(tmp_path: Path) -> Path:
    """cwd for the examples: models/ (tiny trained registries) and confirmation/ CSVs."""
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir(), models)
    shutil.copytree(daily_models_dir(), models, dirs_exist_ok=True)
    conf = tmp_path / "confirmation"
    conf.mkdir()
    # Test fixtures, not market data: simple series that switch confirmations on and off.
    start = 1_601_510_400_000  # 2020-10-01
    days = range(0, 62)
    series = {
        "whale_netflow.csv": [(start + i * D, i % 7) for i in days],
        "exchange_reserves.csv": [(start + i * D, 1000 - i) for i in days],
        "mvrv_z.csv": [(start + i * D, 0.8 if i % 10 < 5 else 1.4) for i in days],
        "fear_greed.csv": [(start + i * D, 50 + (i % 45)) for i in days],
    }
    for name, rows in series.items():
        (conf / name).write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return tmp_path


@pytest.mark.parametrize("example", EXAMPLES, ids=NAMES)
async def test_doc_example_runs_in_a_short_backtest(example: str, tmp_path: Path, write_config,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(_workdir(tmp_path))
    name = tomllib.loads(example)["strategies"][0]["name"]
    start, candles = LONG_RUN.get(name, ("2020-10-01", 1463))  # one hour of Nov 2020 is missing
    body = (f'[backtest]\nsymbols = ["BTC/USDT"]\ntimeframe = "1h"\nstart = {start}\n'
            'end = 2020-12-01\n\n[risk]\nmin_strength = 50.0\n\n' + example)
    settings = load_settings(write_config(body))
    result = await run_backtest(settings)
    s = result.summary
    assert s["candles"] == candles and s["rejected_candles"] == 0
    assert s["signals"] > 0
    async with await Store.open(settings.store.path, result.portfolio) as store:
        asked = await store.fetch("signals", "direction = 'long' AND size_pct > 0")
    if name in NO_ENTRY_ASKED:
        assert not asked and s["fills"] == 0, "the example now asks for entries: require its fills"
    else:
        assert asked, "the example's strategy never asked for an entry"
        assert s["fills"] > 0, f"the example never traded: {dict(s['denials_by_check'])}"
    assert s["final_equity"] > 0
