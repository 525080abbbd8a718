"""``neuralbot backtest --report DIR``: the HTML report of a finished backtest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli.parser import main


def test_backtest_report_has_plots_trades_and_baselines(
    write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["backtest", "--config", str(write_config()), "--from", "2020-01-01", "--to", "2020-03-01",
               "--json", "--report", str(tmp_path / "rep")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    html = Path(summary["report"]).read_text()
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    (section,) = metrics.values()
    assert {"portfolio", "ma", "buy_and_hold"} <= set(section["strategies"])
    assert section["strategies"]["portfolio"]["bars"] == summary["candles"]
    for png in ("equity", "drawdown", "monthly"):
        assert list((tmp_path / "rep").glob(f"{png}-*.png")) and f"{png}-" in html
    assert set(summary["strategies"]) == set(section["strategies"])  # --json: per strategy too
    # the report shows the numbers --json prints: per strategy exactly, the headline rounded
    for name, figures in summary["strategies"].items():
        assert section["strategies"][name] == figures, name
    portfolio = section["strategies"]["portfolio"]
    assert summary["trades"] == portfolio["trades"] > 0
    for key in ("final_equity", "total_return", "annual_return", "max_drawdown", "sharpe", "win_rate",
                "fees", "signals", "denied"):
        assert summary[key] == pytest.approx(portfolio[key], abs=1e-4), key
    (trades_csv,) = (tmp_path / "rep").glob("trades-*-ma.csv")
    assert len(trades_csv.read_text().splitlines()) - 1 == summary["strategies"]["ma"]["trades"]
