"""The command line as a user meets it: exit codes, one-line errors, files written.

Each test runs in a throwaway project root (``ICPML_PROJECT_ROOT``) with its own
SQLite tracking store, so nothing touches the repository's mlruns/ or reports/.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from icpml.cli import app
from icpml.errors import ExitCode
from icpml.synthetic import make_accounts

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture()
def project(project_root):
    """The shared empty project root (tests/conftest.py); the working directory is not it."""
    return project_root


def _config(root: Path, data: Path, **over) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data"]["path"] = str(data)
    cfg["tracking"]["experiment"] = "cli-test"
    for k, v in over.items():
        cfg[k] = v
    p = root / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_demo_writes_report_criteria_and_mlflow_run(demo_run):
    root, result = demo_run
    assert result.exit_code == 0, result.output
    assert (root / "data" / "demo" / "accounts.csv").is_file()
    reports = list((root / "reports").glob("demo_*/report.html"))
    assert len(reports) == 1
    folder = reports[0].parent
    crit = json.loads((folder / "criteria.json").read_text())
    assert crit["schema_version"].startswith("1.")
    assert crit["verdict"]["icp_found"] is True
    assert (root / "mlruns" / "mlflow.db").is_file()
    assert "report:" in result.output and "mlflow:" in result.output
    assert "models:/demo-fit/1 (@champion)" in result.output
    # the first champion's promotion is on record at once, like every later one
    history = json.loads((root / "reports" / "promotions.json").read_text())
    assert [(h["version"], h["decision"]) for h in history] == [("1", "promoted")]
    assert "Champion:** demo-fit version 1" in (root / "reports" / "index.md").read_text()


def test_registered_champion_scores_raw_accounts(demo_run):
    import mlflow

    root, _ = demo_run
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/demo-fit@champion")
    raw = make_accounts(40, seed=11)
    out = model.predict(raw)
    assert list(out.columns[:1]) == ["account_id"]
    for col in ("fit_score", "churn_risk", "tier", "icp_match", "anti_icp_match",
                "exclusion_reasons", "top_reasons"):
        assert col in out.columns
    assert len(out) == 40
    assert out["fit_score"].between(0, 1).all()


def test_score_command_against_champion(demo_run, tmp_path, monkeypatch):
    root, _ = demo_run
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    prospects = make_accounts(120, seed=5).drop(columns=["arr", "nrr", "nps", "churned", "crm"])
    src = tmp_path / "prospects.csv"
    prospects.to_csv(src, index=False)
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "scored.parquet"
    result = runner.invoke(app, ["score", "--data", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # the store's only model, named after the demo config; which version is said
    assert "model: models:/demo-fit@champion (version 1, run " in result.output
    # the prospects lack crm, which an ICP criterion needs: said, with what it costs
    assert "column 'crm' is missing: ICP criterion 'crm" in result.output
    assert "so no account can reach Tier 1 (the tiers of all 120 accounts)" in result.output
    scored = pd.read_parquet(out)
    assert len(scored) == 120
    assert (scored["tier"] != "Tier 1").all()
    assert set(scored["tier"]) <= {"Tier 1", "Tier 2", "Tier 3", "Excluded"}
    assert scored["data_issues"].str.contains("crm").all()
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before  # input untouched


def test_score_from_a_duckdb_query(demo_run, tmp_path, monkeypatch):
    pytest.importorskip("duckdb")
    root, _ = demo_run
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    src = tmp_path / "market.parquet"
    make_accounts(200, seed=6).drop(columns=["arr", "nrr", "nps", "churned"]).to_parquet(src)
    out = tmp_path / "scored.csv"
    sql = f"SELECT * FROM '{src}' WHERE region = 'EMEA'"
    result = runner.invoke(app, ["score", "--query", sql, "--out", str(out)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    n_emea = int((pd.read_parquet(src)["region"] == "EMEA").sum())
    assert len(scored) == n_emea > 0
    bad = runner.invoke(app, ["score", "--query", "SELECT * FROM nowhere WHERE password=hunter2",
                              "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == ExitCode.DATA
    assert "query failed" in bad.output and "hunter2" not in bad.output
    assert not (tmp_path / "x.csv").exists()
    both = runner.invoke(app, ["score", "--out", str(out)])
    assert both.exit_code == ExitCode.CONFIG and "exactly one" in both.output


def test_export_sql_pandas_json(demo_run, tmp_path):
    root, _ = demo_run
    crit = next((root / "reports").glob("demo_*/criteria.json"))
    for fmt, needle in (("sql", "WHERE"), ("pandas", "icp ="), ("json", '"schema_version"')):
        result = runner.invoke(app, ["export", "--criteria", str(crit), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert needle in result.output
    out = tmp_path / "icp.sql"
    result = runner.invoke(app, ["export", "--criteria", str(crit), "--out", str(out)])
    assert result.exit_code == 0 and "\n-- ICP" in out.read_text()


def test_export_pandas_query_matches_criteria(demo_run):
    from icpml.criteria import CriteriaSet

    root, _ = demo_run
    cs = CriteriaSet.from_dict(json.loads(next((root / "reports").glob("demo_*/criteria.json"))
                                          .read_text()))
    df = make_accounts(500, seed=21)
    q = cs.to_pandas()
    assert df.eval(q["icp"]).astype(bool).tolist() == cs.icp_mask(df).tolist()
    assert df.eval(q["anti_icp"]).astype(bool).tolist() == cs.anti_mask(df).tolist()


def test_discover_with_config_no_track(project, tmp_path):
    data = tmp_path / "accounts.csv"
    make_accounts(1200, seed=2).to_csv(data, index=False)
    cfg = _config(project, data)
    result = runner.invoke(app, ["--quiet", "discover", "--config", str(cfg), "--no-track"])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output
    assert "ICP (every criterion)" not in result.output  # --quiet prints paths only
    assert not (project / "mlruns" / "mlflow.db").exists()
    assert list((project / "reports").glob("*/report.html"))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"colums": {}}, "colums: unknown key"),
        ({"cohorts": {"best_quantile": 0.9}}, "cohorts.best_quantile"),
    ],
)
def test_config_errors_are_one_line_with_exit_code(project, tmp_path, edit, needle):
    data = tmp_path / "accounts.csv"
    make_accounts(300, seed=2).to_csv(data, index=False)
    cfg = _config(project, data, **edit)
    result = runner.invoke(app, ["discover", "--config", str(cfg), "--no-track"])
    assert result.exit_code == ExitCode.CONFIG
    assert needle in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_data_error_names_every_problem(project, tmp_path):
    df = make_accounts(300, seed=2).drop(columns=["industry"])
    df.loc[3, "account_id"] = df.loc[4, "account_id"]
    df["arr"] = df["arr"].astype(object)
    df.loc[0, "arr"] = "lots"
    data = tmp_path / "bad.csv"
    df.to_csv(data, index=False)
    before = data.read_bytes()
    cfg = _config(project, data)
    result = runner.invoke(app, ["discover", "--config", str(cfg), "--no-track"])
    assert result.exit_code == ExitCode.DATA
    out = result.output
    assert "'industry'" in out and "duplicated id" in out and "'arr'" in out
    assert "Traceback" not in out
    assert data.read_bytes() == before
    assert not list((project / "reports").glob("*/report.html"))  # nothing half-written


def test_missing_config_file(project):
    result = runner.invoke(app, ["discover", "--config", "nope.yaml"])
    assert result.exit_code == ExitCode.CONFIG
    assert "does not exist" in result.output


def test_score_refuses_to_overwrite_input(project, tmp_path):
    data = tmp_path / "a.csv"
    make_accounts(50, seed=1).to_csv(data, index=False)
    result = runner.invoke(app, ["score", "--data", str(data), "--out", str(data)])
    assert result.exit_code == ExitCode.CONFIG
    assert "never overwritten" in result.output


def test_score_unknown_model_is_a_tracking_error(project, tmp_path):
    data = tmp_path / "a.csv"
    make_accounts(50, seed=1).to_csv(data, index=False)
    result = runner.invoke(app, ["score", "--data", str(data), "--out", str(tmp_path / "o.csv"),
                                 "--model", "models:/nope@champion"])
    assert result.exit_code == ExitCode.INFRA
    # the project has no store yet: the error says where it looked, and none is created
    assert f"no tracking store at '{project / 'mlruns' / 'mlflow.db'}'" in result.output
    assert "--config" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert "icpml demo" not in result.output
    assert not (project / "mlruns").exists()
    assert not (tmp_path / "o.csv").exists()


def test_export_bad_format_and_bad_file(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{}")
    r1 = runner.invoke(app, ["export", "--criteria", str(bad), "--format", "xml"])
    assert r1.exit_code == ExitCode.CONFIG and "--format" in r1.output
    r2 = runner.invoke(app, ["export", "--criteria", str(bad)])
    assert r2.exit_code == ExitCode.CONFIG and "not a valid criteria.json" in r2.output


def test_version_and_python_m():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("icpml ")
    proc = subprocess.run([sys.executable, "-m", "icpml", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert "demo" in proc.stdout and "score" in proc.stdout


def test_export_sql_matches_criteria_in_duckdb(demo_run):
    """The exported WHERE clauses select exactly the accounts icp_match / anti_icp_match mark."""
    duckdb = pytest.importorskip("duckdb")
    from icpml.config import demo_config
    from icpml.criteria import CriteriaSet
    from icpml.data import validate_accounts

    root, _ = demo_run
    cs = CriteriaSet.from_dict(json.loads(next((root / "reports").glob("demo_*/criteria.json"))
                                          .read_text()))
    df = validate_accounts(make_accounts(800, seed=23), demo_config())
    con = duckdb.connect()
    con.register("accounts", df)
    q = cs.to_sql()
    icp_ids = {r[0] for r in con.execute(f"SELECT account_id FROM accounts WHERE {q['icp']}").fetchall()}
    anti_ids = {r[0] for r in con.execute(
        f"SELECT account_id FROM accounts WHERE {q['anti_icp']}").fetchall()}
    assert icp_ids == set(df.loc[cs.icp_mask(df), "account_id"])
    assert anti_ids == set(df.loc[cs.anti_mask(df), "account_id"])
    assert icp_ids and anti_ids


def test_report_is_restored_from_mlflow(demo_run, monkeypatch):
    import shutil

    root, _ = demo_run
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    folder = next((root / "reports").glob("demo_*"))
    original = (folder / "criteria.json").read_text()
    shutil.rmtree(folder)
    result = runner.invoke(app, ["report", "--run", "models:/demo-fit@champion"])
    assert result.exit_code == 0, result.output
    assert (folder / "report.html").is_file()
    assert (folder / "criteria.json").read_text() == original
    bad = runner.invoke(app, ["report", "--run", "deadbeef"])
    assert bad.exit_code == ExitCode.INFRA and "cannot find run" in bad.output


def test_sigterm_reported_by_a_c_extension_as_its_own_error_exits_143(tmp_path, monkeypatch):
    """A SIGTERM landing inside C code (matplotlib's renderer) can surface as a ValueError."""
    import icpml.cli as cli
    import icpml.tracking as tracking

    def interrupted_inside_c(*args, **kwargs):
        cli._State.terminated = True  # what the SIGTERM handler records before raising
        raise ValueError("Invalid bounding box")

    monkeypatch.setattr(tracking, "resolve_model", lambda uri, cfg: tracking.ModelRef("m", "m"))
    monkeypatch.setattr(tracking, "load_scorer", interrupted_inside_c)
    monkeypatch.setattr(cli._State, "terminated", False)
    src = tmp_path / "a.csv"
    make_accounts(5, seed=1).to_csv(src, index=False)
    result = runner.invoke(app, ["score", "--data", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 143 and "interrupted" in result.output
    def bug(*args, **kwargs):
        raise ValueError("an ordinary bug")

    monkeypatch.setattr(tracking, "load_scorer", bug)  # still shows as one
    monkeypatch.setattr(cli._State, "terminated", False)
    result = runner.invoke(app, ["score", "--data", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


def test_score_as_a_console_command_exits_cleanly(demo_run, tmp_path):
    """``python -m icpml score`` leaves without the interpreter's teardown (``os._exit``): its
    exit code, its output to a pipe and its file must still come through, and errors keep
    their own exit code."""
    root, _ = demo_run
    src = tmp_path / "prospects.csv"
    make_accounts(120, seed=6).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "MLFLOW_TRACKING_URI")}
    env["ICPML_PROJECT_ROOT"] = str(root)
    proc = subprocess.run([sys.executable, "-m", "icpml", "score", "--data", str(src), "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Tier 1" in proc.stdout and f"scored:    {out}" in proc.stdout
    assert len(pd.read_csv(out)) == 120
    bad = subprocess.run([sys.executable, "-m", "icpml", "score", "--data", str(src), "--out", str(src)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == ExitCode.CONFIG and "--out must differ" in bad.stderr


def test_retrain_right_after_demo_is_a_no_op(demo_run, tmp_path, monkeypatch):
    """Issue 17: the demo discovers on its data file as written, so `icpml retrain` on the same
    file and config finds the champion trained on this exact data: nothing to do, no new
    version (before: a full retrain that promoted an identical version 2)."""
    import shutil

    src, result = demo_run
    assert result.exit_code == 0, result.output
    root = tmp_path / "copy"
    shutil.copytree(src, root)  # the shared demo store stays as it is
    shutil.copy(REPO / "configs" / "demo.yaml", root / "demo.yaml")
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    out = CliRunner().invoke(app, ["retrain", "-c", str(root / "demo.yaml")])
    assert out.exit_code == 0, out.output
    assert "unchanged" in out.output and "nothing to do" in out.output, out.output
    assert "repaired" not in out.output, out.output  # nothing was left for it to repair
    assert "promoted" not in out.output.split("decision:")[-1].splitlines()[0]
