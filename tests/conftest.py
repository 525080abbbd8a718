from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.paths import SHARED_DATA

DATA_DIR = Path(os.environ.get("NEURALBOT_DATA__DIR", SHARED_DATA)).resolve()
BTC_1H = DATA_DIR / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not BTC_1H.exists():
        pytest.fail(f"real data not found at {DATA_DIR}; set NEURALBOT_DATA__DIR")
    return DATA_DIR


@pytest.fixture
def write_config(tmp_path: Path, data_dir: Path):
    """Write a TOML config into tmp_path (data and store pointed at safe places)."""

    def _write(body: str = "", name: str = "config.toml", strategies: bool = True) -> Path:
        # body first: its top-level keys must precede any table header
        text = body + f'\n[data]\ndir = "{data_dir}"\n\n[store]\npath = "{tmp_path / "bot.sqlite"}"\n'
        if "[api]" not in body:  # daemons under test never fight over the API's fixed port
            text += "\n[api]\nport = 0\n"
        if strategies and "[[strategies]]" not in body:
            text += (
                '\n[[strategies]]\nname = "ma"\nkind = "ma_crossover"\n'
                "params = { fast = 10, slow = 30 }\n"
            )
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
