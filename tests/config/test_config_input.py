"""Configuration and secrets as a careless or hostile user gives them: one line, exit 2, nothing leaked."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from bot.config.settings import ConfigError
from bot.config.load import load_settings
from bot.ops.health import HealthServer, OpsMetrics
from bot.config.ops import HealthConfig
from tests.config.test_config import run_cli

PUBLIC = '[health]\nhost = "0.0.0.0"\n'


@pytest.mark.parametrize("token", ["", " ", "\t \n", "short-tok"], ids=["empty", "space", "blank", "short"])
def test_public_health_bind_refuses_weak_tokens(write_config, monkeypatch: pytest.MonkeyPatch,
                                                 token: str) -> None:
    monkeypatch.setenv("NEURALBOT_HEALTH__TOKEN", token)
    with pytest.raises(ConfigError, match="health.token"):
        load_settings(write_config(PUBLIC))


def test_public_health_bind_accepts_a_long_token(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALBOT_HEALTH__TOKEN", "0123456789abcdef")
    assert load_settings(write_config(PUBLIC)).health.token is not None


@pytest.mark.parametrize("token", ["", "   "], ids=["empty", "space"])
def test_blank_token_is_refused_even_on_loopback(token: str) -> None:
    with pytest.raises(ValidationError, match="token"):
        HealthConfig(token=SecretStr(token))


async def test_health_server_never_treats_a_blank_token_as_a_password() -> None:
    cfg = HealthConfig.model_construct(host="0.0.0.0", port=0, token=SecretStr(""))
    with pytest.raises(ValueError, match="token"):
        HealthServer(cfg, OpsMetrics(), lambda: {"status": "ok"})


@pytest.mark.parametrize("line", ['API_KEY = "abc"', 'Api_Secret = "abc"', 'API_SECRET = "x"'])
def test_secret_in_toml_refused_in_any_letter_case(write_config, line: str) -> None:
    with pytest.raises(ConfigError, match="never read from the TOML"):
        load_settings(write_config(line + "\n"))


def test_secret_in_nested_table_refused_in_any_letter_case(write_config) -> None:
    with pytest.raises(ConfigError, match="never read from the TOML"):
        load_settings(write_config('[health]\nTOKEN = "abcdefabcdefabcdef"\n'))


@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "space"])
def test_empty_api_keys_fail_at_start_up(write_config, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NEURALBOT_API_KEY", value)
    monkeypatch.setenv("NEURALBOT_API_SECRET", "secret-value")
    with pytest.raises(ConfigError, match="api_key"):
        load_settings(write_config('mode = "sandbox"\n'))


@pytest.mark.parametrize("value", ['"true"', '"yes"', "1"], ids=["string-true", "string-yes", "one"])
def test_live_opt_in_only_a_toml_boolean(write_config, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NEURALBOT_API_KEY", "k" * 20)
    monkeypatch.setenv("NEURALBOT_API_SECRET", "s" * 20)
    for key in ("i_understand_live_trading", "I_Understand_Live_Trading"):
        with pytest.raises(ConfigError, match="i_understand_live_trading"):
            load_settings(write_config(f'mode = "live"\n{key} = {value}\n'))


@pytest.mark.parametrize("value", ["yes", "1", "True", "on", " true"])
def test_live_opt_in_from_environment_only_exactly_true(write_config, monkeypatch: pytest.MonkeyPatch,
                                                        value: str) -> None:
    monkeypatch.setenv("NEURALBOT_API_KEY", "k" * 20)
    monkeypatch.setenv("NEURALBOT_API_SECRET", "s" * 20)
    monkeypatch.setenv("NEURALBOT_I_UNDERSTAND_LIVE_TRADING", value)
    with pytest.raises(ConfigError, match="i_understand_live_trading"):
        load_settings(write_config('mode = "live"\n'))


def test_live_opt_in_accepts_true(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALBOT_API_KEY", "k" * 20)
    monkeypatch.setenv("NEURALBOT_API_SECRET", "s" * 20)
    assert load_settings(write_config('mode = "live"\ni_understand_live_trading = true\n')).mode == "live"
    monkeypatch.setenv("NEURALBOT_I_UNDERSTAND_LIVE_TRADING", "true")
    assert load_settings(write_config('mode = "live"\n')).i_understand_live_trading is True


def test_redacted_masks_every_secret_bearing_value(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALBOT_NOTIFY__TELEGRAM_TOKEN", "tg-secret-123")
    monkeypatch.setenv("NEURALBOT_HEALTH__TOKEN", "health-secret-123456")
    s = load_settings(write_config(
        '[notify]\nwebhook_url = "https://user:hook-pass@hooks.example/x?token=q-secret"\n'
        'telegram_chat_id = "42"\n'
        '[exchange]\nhttp_url = "http://admin:ex-pass@127.0.0.1:1"\n'))
    text = json.dumps(s.redacted())
    for secret in ("hook-pass", "q-secret", "tg-secret-123", "health-secret-123456", "ex-pass"):
        assert secret not in text, secret
    assert "hooks.example" in text  # the rest of the URL stays readable


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[backtest]\ninitial_equity = 1e308\n", "backtest.initial_equity"),
        ("[backtest]\ninitial_equity = inf\n", "backtest.initial_equity"),
        ("[backtest]\ninitial_equity = nan\n", "backtest.initial_equity"),
        ("[exchange]\nfee_rate = nan\n", "exchange.fee_rate"),
        ("[risk]\ntake_profit_pct = inf\n", "risk.take_profit_pct"),
        ("[risk]\natr_multiple = 1e300\n", "risk.atr_multiple"),
        ("[feed]\nreplay_speed = inf\n", "feed.replay_speed"),
    ],
)
def test_money_and_rates_must_be_finite_and_sane(write_config, body: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(write_config(body))


def _one_line_exit_2(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('mode = "paper" # caf\xe9\n'.encode("latin-1"))
    _one_line_exit_2(run_cli("backtest", "--config", str(path)), str(path), "UTF-8")


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("NEURALBOT_RISK", "notjson", "NEURALBOT_RISK"),
        ("NEURALBOT_STRATEGIES", "[1,2", "NEURALBOT_STRATEGIES"),
        ("NEURALBOT_BACKTEST", '{"initial_equity": "x"', "NEURALBOT_BACKTEST"),
    ],
)
def test_malformed_environment_json_is_one_line(write_config, var: str, value: str, needle: str) -> None:
    path = write_config()
    _one_line_exit_2(run_cli("backtest", "--config", str(path), env={var: value}), needle)


def test_empty_secret_file_is_one_line(write_config, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api_key").write_text("")
    (secrets / "api_secret").write_text("a-secret")
    path = write_config('mode = "sandbox"\n')
    proc = run_cli("backtest", "--config", str(path), env={"NEURALBOT_SECRETS_DIR": str(secrets)})
    _one_line_exit_2(proc, "api_key")


def test_exchange_sandbox_key_is_gone_with_a_pointer_to_mode(write_config) -> None:
    with pytest.raises(ConfigError, match='mode = "sandbox"'):
        load_settings(write_config("[exchange]\nsandbox = false\n"))


def test_removing_take_profit_means_no_take_profit(write_config) -> None:
    assert load_settings(write_config("[risk]\nstop_loss_pct = 5\n")).risk.take_profit_pct is None


async def test_backtest_run_row_holds_no_secret(write_config, tmp_path: Path, monkeypatch) -> None:
    from datetime import date

    from bot.kernel.compose import run_backtest

    monkeypatch.setenv("NEURALBOT_NOTIFY__TELEGRAM_TOKEN", "tg-secret-123")
    s = load_settings(write_config(
        '[notify]\nwebhook_url = "https://user:hook-pass@hooks.example/x"\ntelegram_chat_id = "1"\n'
        "[backtest]\nstart = 2020-01-01\nend = 2020-01-03\n"))
    await run_backtest(s, start=date(2020, 1, 1), end=date(2020, 1, 3), run_id="r1")
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:
        (config_json,) = db.execute("SELECT config_json FROM runs").fetchone()
    assert "hook-pass" not in config_json and "tg-secret-123" not in config_json
