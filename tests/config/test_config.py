from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config.settings import ConfigError
from bot.config.load import load_settings
from tests.paths import REPO



def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEURALBOT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=REPO,
        env=full_env, timeout=120,
    )


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALBOT_CONFIG", raising=False)
    s = load_settings(REPO / "config.example.toml")
    assert s.mode == "paper"
    assert s.risk.max_position_pct == 10.0
    assert [st.kind for st in s.strategies] == ["neural", "ma_crossover"]  # the default product first


def test_environment_overrides_toml(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config("[risk]\nmax_position_pct = 8.0\n")
    monkeypatch.setenv("NEURALBOT_RISK__MAX_POSITION_PCT", "4.5")
    monkeypatch.setenv("NEURALBOT_BACKTEST__SLIPPAGE_BPS", "2")
    s = load_settings(path)
    assert s.risk.max_position_pct == 4.5
    assert s.backtest.slippage_bps == 2.0
    # a sibling key of the overridden section keeps its TOML/default value
    assert s.risk.stop_loss_pct == 6.0


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("[risk]\nmax_postion_pct = 5\n", "risk.max_postion_pct", "did you mean 'max_position_pct'"),
        ("[risk]\nmax_position_pct = 150\n", "risk.max_position_pct", "less than or equal to 100"),
        ("[risk]\nstop_loss_pct = \"six\"\n", "risk.stop_loss_pct", "'six'"),
        ("[backtest]\ntimeframe = \"7m\"\n", "backtest.timeframe", "unknown timeframe"),
        ("mode = \"live\"\n", "i_understand_live_trading", "real money"),
        ("[risk]\nstop_loss_pct = 8\ntake_profit_pct = 5\n", "risk.take_profit_pct", "above stop loss"),
        ("api_key = \"abc\"\n", "api_key", "never read from the TOML"),
        ("[notify]\ntelegram_token = \"t\"\n", "notify.telegram_token", "NEURALBOT_NOTIFY__TELEGRAM_TOKEN"),
        ("nonsense = 1\n", "nonsense", "unknown key"),
        ("[[strategies]]\nname = \"a\"\nkind = \"buy_and_hold\"\n[[strategies]]\nname = \"a\"\n"
         "kind = \"buy_and_hold\"\n", "strategies", "repeated: a"),
        ("[[models]]\nname = \"m\"\nkind = \"gbm\"\n[[models]]\nname = \"m\"\nkind = \"lstm\"\n",
         "models", "repeated: m"),
        ("[walkforward]\nretrain_every = \"fortnight\"\n", "walkforward.retrain_every", "quarter"),
        ("[risk]\nbreakers = [\"max_drawdown\", \"daily_los\"]\n", "risk.breakers", "did you mean 'daily_loss'"),
        ("[walkforward]\nsplitter = \"cpvc\"\n", "walkforward.splitter", "did you mean 'cpcv'"),
        ("[walkforward]\nsplitter = \"cpcv\"\ncpcv_groups = 4\ncpcv_test_groups = 4\n", "walkforward",
         "must be below cpcv_groups"),
        ("[walkforward]\ncpcv_groups = 2\n", "walkforward.cpcv_groups", "greater than or equal to 3"),
    ],
    ids=["typo", "cap-out-of-range", "wrong-type", "bad-timeframe", "live-without-opt-in",
         "stop-above-target", "secret-in-toml", "nested-secret-in-toml", "unknown-top-level",
         "duplicate-strategy-names", "duplicate-model-names", "bad-retrain-cadence", "unknown-breaker",
         "splitter-typo", "cpcv-test-groups", "cpcv-groups"],
)
def test_bad_config_names_the_key(write_config, body: str, key: str, fragment: str) -> None:
    path = write_config(body)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = err.value.render()
    assert key in text and fragment in text, text


def test_bad_strategy_kind_names_index(write_config) -> None:
    path = write_config('[[strategies]]\nname = "x"\nkind = "magic"\n')
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.kind"):
        load_settings(path)


def test_live_with_opt_in_still_needs_keys(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config('mode = "live"\ni_understand_live_trading = true\n')
    with pytest.raises(ConfigError, match="NEURALBOT_API_KEY"):
        load_settings(path)
    monkeypatch.setenv("NEURALBOT_API_KEY", "k-123456")
    monkeypatch.setenv("NEURALBOT_API_SECRET", "s-abcdef")
    s = load_settings(path)
    assert s.api_key is not None and s.api_key.get_secret_value() == "k-123456"
    shown = repr(s) + str(s.redacted())
    assert "k-123456" not in shown and "s-abcdef" not in shown


def test_secrets_dir(write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api_key").write_text("file-key")
    (secrets / "api_secret").write_text("file-secret")
    monkeypatch.setenv("NEURALBOT_SECRETS_DIR", str(secrets))
    s = load_settings(write_config('mode = "sandbox"\n'))
    assert s.api_secret is not None and s.api_secret.get_secret_value() == "file-secret"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--config", "does-not-exist.toml"], "config file not found"),
        ([], "no configuration file"),
    ],
    ids=["missing-file", "no-config-given"],
)
def test_cli_missing_config_exits_2(args: list[str], needle: str) -> None:
    proc = run_cli("backtest", *args)
    assert proc.returncode == 2
    assert needle in proc.stderr


def test_cli_typo_exits_2_and_names_key(write_config) -> None:
    path = write_config("[risk]\nmax_postion_pct = 5\n")
    proc = run_cli("backtest", "--config", str(path), "--json")
    assert proc.returncode == 2
    assert "risk.max_postion_pct" in proc.stderr
    assert proc.stdout == ""


def test_cli_bad_strategy_param_exits_2(write_config) -> None:
    path = write_config('[[strategies]]\nname = "m"\nkind = "ma_crossover"\nparams = { fats = 3 }\n')
    proc = run_cli("backtest", "--config", str(path), "--json")
    assert proc.returncode == 2
    assert "strategies[0].params.fats" in proc.stderr


def test_example_config_documents_every_key() -> None:
    """Every settings key appears in config.example.toml (set, or commented out with its default)."""
    import re

    from pydantic import BaseModel

    from bot.config.settings import Settings
    from strategies.models.spec import ModelSpec

    text = (REPO / "config.example.toml").read_text()
    missing = []
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        section = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if section is None and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            section = args[0]  # list[...] tables: [[strategies]], [[models]]
        if section is None:
            if name not in ("api_key", "api_secret") and not re.search(rf"(?m)^#?\s*{name}\s*=", text):
                missing.append(name)
            continue
        for key in section.model_fields:
            pattern = rf"(?m)^[#\s]*{key}\s*[=:]" if section is not ModelSpec else rf"\b{key}\b"
            if not re.search(pattern, text):
                missing.append(f"{name}.{key}")
    assert not missing, f"undocumented keys: {missing}"


def test_left_out_sections_are_fresh_defaults_from_plain_functions() -> None:
    """A section the file leaves out is its class's defaults, a new instance each time; each default
    factory is a plain function, since pydantic reads its signature when ``Settings`` is defined (a
    model class's is built from all its fields, a builtin's parsed with tokenize: ``status`` pays it)."""
    import inspect

    from bot.config.settings import Settings

    factories = {n: f for n, f in Settings.model_fields.items() if f.default_factory is not None}
    assert {"exchange", "risk", "telegram", "strategies", "models"} <= set(factories)
    for name, field in factories.items():
        assert inspect.isfunction(field.default_factory), name
        made, again = field.default_factory(), field.default_factory()  # type: ignore[call-arg]
        assert made == (field.annotation() if isinstance(field.annotation, type) else []), name
        assert made is not again, name
