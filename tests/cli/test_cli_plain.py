"""The command line speaks plainly: help without type noise, errors without pydantic wording,
retrain output without Markdown, score files with names and readable numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from icpml.cli import _print_diff, _State, app
from icpml.errors import ExitCode
from icpml.synthetic import make_accounts

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
COMMANDS = ["demo", "discover", "score", "export", "retrain", "validate", "products", "report",
            "promote"]
PYDANTIC_WORDS = ("Input should", "Value error", "valid dictionary", "valid integer", "type=")


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]], ids=lambda c: c[0] if c else "icpml")
def test_help_has_no_bool_metavar(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    # no type noise: typer's <bool>, <str>, <path>... metavars say nothing a user can act on
    assert not re.search(r"<(bool|str|int|float|path)>", result.output), result.output
    assert "--help" in result.output and "Show this message and exit." in result.output


def test_export_help_lists_the_format_choices():
    out = runner.invoke(app, ["export", "--help"]).output
    assert re.search(r"--format <sql\|pandas\|json>", out), out
    assert "<str>" not in out


@pytest.mark.parametrize(("args", "needle"), [
    (["export", "--criteria", "x.json", "--format", "xml"], "'xml' is not one of 'sql', 'pandas', 'json'"),
    (["demo", "--n", "3"], "'--n': must be at least 200"),
    (["demo", "--seed", "abc"], "'--seed': must be a whole number"),
])
def test_option_errors_are_plain(args, needle):
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.CONFIG
    assert needle in result.output, result.output
    assert not any(w in result.output for w in PYDANTIC_WORDS), result.output
    assert "Traceback" not in result.output


def _config(root: Path, **edit) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data"]["path"] = str(root / "accounts.csv")
    for k, v in edit.items():
        cfg[k] = v
    p = root / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.mark.parametrize(("edit", "needles"), [
    ({"columns": {**yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["columns"],
                  "features": ["industry", "employees", "crm"]}},
     ["columns.features:", "features are grouped", "{firmographic: [industry, employees]"]),
    ({"cohorts": [0.25, 0.25]}, ["cohorts: expected a mapping"]),
    ({"models": {"seed": "abc", "holdout_size": 2}},
     ["models.seed: expected a whole number", "; models.holdout_size: must be less than 0.6"]),
])
def test_config_errors_print_one_plain_line(tmp_path, monkeypatch, edit, needles):
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(tmp_path))
    cfg = _config(tmp_path, **edit)
    result = runner.invoke(app, ["discover", "--config", str(cfg), "--no-track"])
    assert result.exit_code == ExitCode.CONFIG
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines  # several problems: one line, one clause each
    assert lines[0].startswith(f"error: {cfg}: "), lines
    for needle in needles:
        assert needle in result.output, result.output
    assert not any(w in result.output for w in PYDANTIC_WORDS), result.output


def test_retrain_diff_is_plain_text(capsys, monkeypatch):
    monkeypatch.setattr(_State, "quiet", False)
    _print_diff({"added": [{"kind": "icp", "criterion": "industry in {SaaS}"}],
                 "removed": [{"kind": "anti_icp", "criterion": "employees < 50"}],
                 "changed": [{"kind": "icp", "was": "150 <= employees <= 600",
                              "criterion": "140 <= employees <= 620"}]})
    out = capsys.readouterr().out
    assert "##" not in out and "**" not in out and "- **" not in out
    assert "added (ICP)" in out and "removed (anti-ICP)" in out
    assert "150 <= employees <= 600 -> 140 <= employees <= 620" in out
    _print_diff({"added": [], "removed": [], "changed": []})
    assert "none" in capsys.readouterr().out


def test_scored_csv_keeps_names_and_rounds_scores(demo_run, tmp_path, monkeypatch):
    root, result = demo_run
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    src = tmp_path / "prospects.csv"
    prospects = make_accounts(150, seed=21).drop(columns=["arr", "nrr", "nps", "churned"])
    prospects.insert(1, "name", [f"Prospect {i}" for i in range(len(prospects))])
    prospects.to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "--data", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    assert list(scored.columns[:3]) == ["account_id", "company_name", "name"]
    assert scored["company_name"].tolist() == prospects["company_name"].tolist()
    assert scored["name"].tolist() == prospects["name"].tolist()
    text = out.read_text()
    header = text.splitlines()[0].split(",")
    for line in text.splitlines()[1:]:
        for col in ("fit_score", "churn_risk"):
            value = line.split(",")[header.index(col)]
            assert re.fullmatch(r"\d(\.\d{1,4})?", value), (col, value)
