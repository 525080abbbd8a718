"""The CLI starts light: building its parser, and ``status`` on a neural config, import no heavy package.

Each check runs a fresh interpreter (this test process has long imported everything) and reads its
``sys.modules``; the time these imports would cost is measured by ``bench/bench_cli.py``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from strategies.catalog import KINDS
from tests.paths import REPO
from tests.cli.test_status import seed_store

MODEL_STACK = ("torch", "sklearn", "ccxt", "matplotlib", "pandas", "aiohttp")
# asyncio and the event dataclasses are standard library, yet cost --help ~40 ms
PARSER_FREE = (*MODEL_STACK, "numpy", "pydantic", "aiosqlite", "structlog", "asyncio", "dataclasses")


def loaded_after(code: str, modules: bool = False) -> set[str]:
    """Top-level packages (``modules``: every module) in ``sys.modules`` after running ``code`` in a
    fresh interpreter."""
    names = "sys.modules" if modules else "{m.split('.')[0] for m in sys.modules}"
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({names})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_building_the_parser_imports_no_third_party_package() -> None:
    loaded = loaded_after("import bot.cli.parser; bot.cli.parser.build_parser().format_help()")
    assert "bot" in loaded  # the probe sees what the code imported
    assert loaded.isdisjoint(PARSER_FREE), sorted(loaded & set(PARSER_FREE))


async def test_status_with_a_neural_config_imports_no_model_stack(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config('[[strategies]]\nname = "ens"\nkind = "neural"\nparams = { threshold = 0.6 }\n')
    await seed_store(tmp_path / "bot.sqlite")
    run = f"from bot.cli.parser import main\nassert main(['status', '--config', {str(config)!r}]) == 0"
    loaded = loaded_after(run, modules=True)
    assert "pydantic" in loaded and "sqlite3" in loaded  # it did load the config and read the store
    assert loaded.isdisjoint(MODEL_STACK), sorted(loaded & set(MODEL_STACK))
    # it reads the store with sqlite3 alone (bot.store.readonly): no aiosqlite thread, no event classes
    status_free = {"aiosqlite", "bot.store.store", "bot.core.events", "bot.core.orders"}
    # and builds only its own subcommand's parser (bot.cli.parser.COMMAND_MODULES)
    status_free |= {"bot.cli.train", "bot.cli.evaluation", "bot.cli.research", "bot.cli.plot"}
    assert loaded.isdisjoint(status_free), sorted(loaded & status_free)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_param_names_read_from_source_match_the_signature(kind: str) -> None:
    factory = KINDS[kind]
    names = set(inspect.signature(factory.target()).parameters)
    if factory.builds is not None:  # a factory loading the models of the class it builds
        built = getattr(importlib.import_module(factory.builds[0]), factory.builds[1])
        names = (names | set(inspect.signature(built).parameters)) - factory.supplies
    assert factory.parameters == names


def test_backtest_of_a_model_free_strategy_imports_no_model_stack(
        write_config: Callable[..., Path]) -> None:
    # the in-sample guard reads model metadata: for an MA cross there is none to read
    config = write_config('[backtest]\nstart = 2020-01-01\nend = 2020-01-15\n')
    loaded = loaded_after(f"from bot.cli.parser import main\nassert main(['backtest', '--config', {str(config)!r}]) == 0")
    assert "numpy" in loaded and "aiosqlite" in loaded  # it did run the Engine over the store
    assert loaded.isdisjoint(MODEL_STACK), sorted(loaded & set(MODEL_STACK))
