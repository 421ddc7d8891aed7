"""Hostile inputs: every user mistake ends cleanly, never in a traceback.

Each case starts from valid synthetic accounts and the demo config, breaks one
thing, and runs the command as a user would. A refusal must:

(a) exit with the specific code of :class:`icpml.errors.ExitCode`;
(b) print ONE line (log lines starting INFO/WARNING aside) naming the column,
    key or file at fault;
(c) print no traceback;
(d) leave no new file behind (no report, no ``*.tmp``, no half-written output);
(e) leave the input file byte for byte unchanged.

Inputs that are odd but usable (text numbers, a one-member category, a constant
feature, 100k-character strings, 10,000 columns, NaN) must load and validate;
those are checked on :func:`icpml.data.validate_accounts` directly, since a full
discovery is slow. A few cases run ``python -m icpml`` in a subprocess to show
the real stderr carries no traceback either.

Decisions recorded here:

* a constant feature is not an error: it is screened out with a warning (it
  cannot separate customers);
* a constant outcome, infinities, a numeric column with stray text, dates in
  mixed formats and a single churn value are data errors (exit 3);
* a prospect list with missing columns, unseen categories or infinities is
  still scored; the problems are named in ``data_issues``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from icpml.cli import app
from icpml.config import config_from_dict
from icpml.data import load_accounts, validate_accounts
from icpml.errors import DataError, ExitCode, OutputError
from icpml.synthetic import make_accounts

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
LONG = "x" * 100_000

#: models small enough that any discovery the suite runs takes about a second
FAST = {
    "models": {"max_iter": 10, "cv_folds": 2, "min_samples_leaf": 5},
    "criteria": {"n_bootstrap": 50, "stability_resamples": 0},
}


# ----------------------------------------------------------------------------- helpers
@dataclass
class Project:
    base: Path  # tmp_path: the input files live here
    root: Path  # the project root (ICPML_PROJECT_ROOT): config, reports/, mlruns/


@pytest.fixture()
def project(project_root, tmp_path):
    """The shared project root (tests/conftest.py) holding an earlier report."""
    (project_root / "reports").mkdir()
    (project_root / "reports" / "earlier.txt").write_text("an earlier report\n")
    return Project(tmp_path, project_root)


@pytest.fixture(scope="module")
def base_accounts():
    return make_accounts(400, seed=0)


def _cfg_dict(**over) -> dict:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["tracking"]["experiment"] = "hostile"
    cfg.update(FAST)
    cfg.update(over)
    return cfg


def _write_cfg(root: Path, cfg: dict) -> Path:
    p = root / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _files(base: Path) -> set[str]:
    return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _error_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines()
            if ln.strip() and not ln.startswith(("INFO", "WARNING"))]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _invoke(project: Project, args: list[str], inputs: list[Path] = ()):
    """Run the CLI; return the result, the seconds taken and the snapshot checks' inputs."""
    before = _files(project.base)
    hashes = {p: _sha(p) for p in inputs if p.is_file()}
    t0 = time.perf_counter()
    result = runner.invoke(app, args)
    return result, time.perf_counter() - t0, before, hashes


def _assert_clean_failure(project: Project, run, code: int, needles: list[str],
                          max_len: int = 1000) -> str:
    result, _, before, hashes = run
    out = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"crashed: {result.exception!r}\n{out}")
    assert result.exit_code == code, out  # (a)
    assert "Traceback" not in out  # (c)
    lines = _error_lines(out)
    assert len(lines) == 1, lines  # (b)
    line = lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    assert len(line) <= max_len, len(line)
    assert _files(project.base) == before  # (d): no report, no temp, no half-written file
    for p, digest in hashes.items():  # (e)
        assert _sha(p) == digest, p
    return line


# ----------------------------------------------------------------------------- discover: bad data
def _empty_file(df, cfg):
    return b""


def _header_only(df, cfg):
    return df.iloc[:0]


def _semicolons(df, cfg):
    return df.to_csv(index=False, sep=";").encode()


def _semicolons_commas_inside(df, cfg):
    """A European export: semicolons between fields, commas inside values ("1,5", "A, B")."""
    df["annual_revenue_musd"] = df["annual_revenue_musd"].map(lambda v: f"{v:.1f}".replace(".", ","))
    df.loc[3, "industry"] = "Retail, Wholesale"
    return df.to_csv(index=False, sep=";").encode()


def _latin1(df, cfg):
    df.loc[7, "industry"] = "Café"
    return df.to_csv(index=False).encode("latin-1")


def _duplicate_ids(df, cfg):
    df.loc[5, "account_id"] = df.loc[4, "account_id"]
    return df


def _missing_ids(df, cfg):
    df.loc[[3, 9], "account_id"] = None
    return df


def _missing_column(df, cfg):
    return df.drop(columns=["crm"])


def _empty_feature(df, cfg):
    df["intent_score"] = np.nan
    return df


def _mixed_types(df, cfg):
    df["employees"] = df["employees"].astype(object)
    df.loc[::9, "employees"] = "about 200"
    return df


def _mixed_dates(df, cfg):
    cfg["columns"]["date"] = "signup"
    formats = ["2021-03-04", "03/04/2021", "4 March 2021", "2021-03-05 10:00:00"]
    df["signup"] = [formats[i % len(formats)] for i in range(len(df))]
    return df


def _constant_outcome(df, cfg):
    df["arr"] = 50_000.0
    return df


def _too_few_accounts(df, cfg):
    return df.head(30)


def _all_churned(df, cfg):
    df["churned"] = True
    return df


def _none_churned(df, cfg):
    df["churned"] = "no"
    return df


def _inf_feature(df, cfg):
    df.loc[3, "intent_score"] = np.inf
    return df


def _inf_outcome(df, cfg):
    df.loc[3, "arr"] = -np.inf
    return df


def _long_churn_value(df, cfg):
    df["churned"] = df["churned"].astype(object)
    df.loc[0, "churned"] = LONG
    return df


def _long_duplicate_id(df, cfg):
    df["account_id"] = df["account_id"].astype(object)
    df.loc[[0, 1], "account_id"] = LONG
    return df


def _missing_data_file(df, cfg):
    cfg["data"]["path"] = "data/nowhere/accounts.csv"
    return df


DATA_CASES = [
    pytest.param(_empty_file, ["accounts.csv", "empty"], id="empty-file"),
    pytest.param(_header_only, ["accounts.csv", "table is empty"], id="header-only"),
    pytest.param(_semicolons, ["semicolon-separated", "comma-separated"], id="semicolon-delimiter"),
    pytest.param(_semicolons_commas_inside, ["semicolon-separated", "comma-separated"],
                 id="semicolon-delimiter-commas-inside"),
    pytest.param(_latin1, ["UTF-8", "column 'industry'", "line 9"], id="latin1-bytes"),
    pytest.param(_duplicate_ids, ["'account_id'", "duplicated id"], id="duplicate-ids"),
    pytest.param(_missing_ids, ["'account_id'", "2 empty value"], id="missing-ids"),
    pytest.param(_missing_column, ["'crm'", "columns.*"], id="missing-required-column"),
    pytest.param(_empty_feature, ["'intent_score'", "entirely empty"], id="feature-all-empty"),
    pytest.param(_mixed_types, ["'employees'", "'about 200'", "columns.categorical"],
                 id="mixed-types"),
    pytest.param(_mixed_dates, ["'signup'", "'03/04/2021'", "YYYY-MM-DD"], id="mixed-date-formats"),
    pytest.param(_constant_outcome, ["'arr'", "same value"], id="constant-outcome"),
    pytest.param(_too_few_accounts, ["30 accounts", "cohorts.min_per_cohort"], id="too-few-accounts"),
    pytest.param(_all_churned, ["'churned'", "single value"], id="all-churned"),
    pytest.param(_none_churned, ["'churned'", "single value"], id="none-churned"),
    pytest.param(_inf_feature, ["'intent_score'", "infinite"], id="inf-in-feature"),
    pytest.param(_inf_outcome, ["'arr'", "infinite"], id="inf-in-outcome"),
    pytest.param(_long_churn_value, ["'churned'", "yes/no"], id="100k-char-churn-value"),
    pytest.param(_long_duplicate_id, ["'account_id'", "duplicated id"], id="100k-char-duplicate-id"),
    pytest.param(_missing_data_file, ["does not exist", "data.path"], id="config-data-file-missing"),
]


@pytest.mark.parametrize(("breaker", "needles"), DATA_CASES)
def test_bad_data_is_refused_in_one_line(project, base_accounts, breaker, needles):
    """Refused in one line, before training, and nothing written: not even the new tracking
    store the run would have created (a store of its own, in the checked folder)."""
    df = base_accounts.copy()
    data = project.base / "accounts.csv"
    cfg = _cfg_dict()
    cfg["data"]["path"] = str(data)
    cfg["tracking"]["uri"] = f"sqlite:///{project.base / 'new_store' / 'mlflow.db'}"
    out = breaker(df, cfg)
    if isinstance(out, bytes):
        data.write_bytes(out)
    else:
        out.to_csv(data, index=False)
    cfg_path = _write_cfg(project.root, cfg)
    run = _invoke(project, ["discover", "--config", str(cfg_path)], [data, cfg_path])
    _assert_clean_failure(project, run, ExitCode.DATA, needles, max_len=600)
    assert run[1] < 20, f"refusing bad data took {run[1]:.1f}s"  # refused before any training


def test_data_option_pointing_nowhere(project):
    cfg_path = _write_cfg(project.root, _cfg_dict())
    run = _invoke(project, ["discover", "--config", str(cfg_path), "--no-track",
                            "--data", str(project.base / "nope.csv")])
    _assert_clean_failure(project, run, ExitCode.DATA, ["nope.csv", "does not exist"])


# ----------------------------------------------------------------------------- discover: bad config
def _set(path: str, value):
    def edit(cfg):
        node = cfg
        *parents, leaf = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    return edit


def _weights(*ws):
    def edit(cfg):
        for m, w in zip(cfg["columns"]["outcomes"], ws, strict=False):
            m["weight"] = w
    return edit


CONFIG_CASES = [
    pytest.param(_set("colour", "blue"), ["colour", "unknown key"], id="unknown-top-level-key"),
    pytest.param(_set("cohorts.best_quantlie", 0.2), ["cohorts.best_quantlie", "unknown key"],
                 id="misspelt-nested-key"),
    pytest.param(_set("cohorts.min_per_cohort", "ten"), ["cohorts.min_per_cohort"],
                 id="wrong-type-number"),
    pytest.param(_set("columns.features", ["industry", "employees"]), ["columns.features"],
                 id="wrong-type-features-list"),
    pytest.param(_set("columns.outcomes", "arr"), ["columns.outcomes"], id="wrong-type-outcomes"),
    pytest.param(lambda c: c["cohorts"].update(best_quantile=0.6, worst_quantile=0.6),
                 ["cohorts.best_quantile", "cohorts.worst_quantile"],
                 id="quantiles-overlap-sum-above-1"),
    pytest.param(lambda c: c["cohorts"].update(best_quantile=0.5, worst_quantile=0.3),
                 ["cohorts.best_quantile", "less than 0.5"], id="quantile-at-half"),
    pytest.param(_weights(0, 0, 0), ["columns.outcomes.0.weight", "greater than 0"],
                 id="outcome-weights-all-zero"),
    pytest.param(_weights(1.0, -1.0, 0.0), ["columns.outcomes.1.weight"],
                 id="outcome-weights-sum-to-zero"),
    pytest.param(_set("columns.churn", "industry"), ["'industry'", "churn"],
                 id="churn-column-is-a-feature"),
]


@pytest.mark.parametrize(("edit", "needles"), CONFIG_CASES)
def test_bad_config_is_refused_in_one_line(project, base_accounts, edit, needles):
    data = project.base / "accounts.csv"
    base_accounts.to_csv(data, index=False)
    cfg = _cfg_dict()
    cfg["data"]["path"] = str(data)
    edit(cfg)
    cfg_path = _write_cfg(project.root, cfg)
    run = _invoke(project, ["discover", "--config", str(cfg_path), "--no-track"], [data, cfg_path])
    _assert_clean_failure(project, run, ExitCode.CONFIG, ["cfg.yaml", *needles])


@pytest.mark.parametrize(("text", "needles"), [
    pytest.param("columns: [unclosed\n", ["not valid YAML", "line"], id="yaml-syntax"),
    pytest.param("- just\n- a list\n", ["mapping"], id="yaml-top-level-list"),
    pytest.param("", ["empty"], id="yaml-empty"),
    pytest.param("name: x\n", ["columns", "required key is missing"], id="yaml-no-columns"),
])
def test_unreadable_config_file(project, text, needles):
    cfg_path = project.root / "cfg.yaml"
    cfg_path.write_text(text)
    run = _invoke(project, ["discover", "--config", str(cfg_path), "--no-track"], [cfg_path])
    _assert_clean_failure(project, run, ExitCode.CONFIG, needles)


# ----------------------------------------------------------------------------- odd but usable data
def test_numbers_as_text_are_parsed_in_features_and_outcomes(base_accounts):
    df = base_accounts.copy()
    df["annual_revenue_musd"] = df["annual_revenue_musd"].map(
        lambda v: f"${v:,.2f}" if pd.notna(v) else "")
    df.loc[0, "annual_revenue_musd"] = "$1,234.50"
    df["employees"] = df["employees"].map(lambda v: f"{v * 10:,}")
    df["arr"] = df["arr"].map(lambda v: f"€ {v:,.0f}" if pd.notna(v) else "")
    df.loc[1, "arr"] = "12,500 USD"
    out = validate_accounts(df, config_from_dict(_cfg_dict()))
    assert out["annual_revenue_musd"].dtype == float and out.loc[0, "annual_revenue_musd"] == 1234.5
    assert out["employees"].dtype == float
    assert out.loc[2, "employees"] == base_accounts.loc[2, "employees"] * 10
    assert out["arr"].dtype == float and out.loc[1, "arr"] == 12_500.0
    assert out["arr"].notna().sum() == base_accounts["arr"].notna().sum()


def test_category_with_one_member_validates(base_accounts):
    from icpml.data import feature_kinds

    df = base_accounts.copy()
    df.loc[0, "industry"] = "Aerospace"
    cfg = config_from_dict(_cfg_dict())
    out = validate_accounts(df, cfg)
    assert (out["industry"] == "Aerospace").sum() == 1
    assert feature_kinds(out, cfg)["industry"] == "categorical"


def test_constant_feature_is_screened_with_a_warning_not_an_error(base_accounts):
    """Decision: a constant feature cannot separate customers; it is excluded and warned about."""
    from icpml.cohorts import label_cohorts, value_score
    from icpml.data import feature_kinds
    from icpml.features import screen_columns

    df = base_accounts.copy()
    df["region"] = "EMEA"
    df["intent_score"] = 7.0
    cfg = config_from_dict(_cfg_dict())
    out = validate_accounts(df, cfg)  # no error
    cohorts = label_cohorts(value_score(out, cfg.columns.outcomes))
    ends = cohorts[cohorts != "middle"]
    screen = screen_columns(out, feature_kinds(out, cfg), ends == "best")
    assert set(screen.excluded) == {"region", "intent_score"}
    assert all("same value" in w for w in screen.warnings)


def test_nan_is_missing_and_inf_is_named(base_accounts):
    cfg = config_from_dict(_cfg_dict())
    df = base_accounts.copy()
    df.loc[[1, 2], "intent_score"] = np.nan
    df.loc[4, "nps"] = np.nan
    out = validate_accounts(df, cfg)
    assert out.loc[[1, 2], "intent_score"].isna().all() and pd.isna(out.loc[4, "nps"])
    assert out["intent_score"].notna().sum() == df["intent_score"].notna().sum()
    df["annual_revenue_musd"] = df["annual_revenue_musd"].astype(str)
    df.loc[5, "annual_revenue_musd"] = "inf"
    df.loc[6, "nrr"] = np.inf
    with pytest.raises(DataError) as e:
        validate_accounts(df, cfg)
    assert "'annual_revenue_musd' has 1 infinite" in str(e.value)
    assert "'nrr' has 1 infinite" in str(e.value)
    assert len(e.value.problems) == 2


def test_100k_character_category_validates(base_accounts):
    df = base_accounts.copy()
    df.loc[0, "cloud_provider"] = LONG
    out = validate_accounts(df, config_from_dict(_cfg_dict()))
    assert out.loc[0, "cloud_provider"] == LONG


def test_10000_columns_load_and_validate_quickly(tmp_path, base_accounts):
    df = base_accounts.head(60).reset_index(drop=True)
    rng = np.random.default_rng(0)
    extra = pd.DataFrame(rng.integers(0, 100, size=(len(df), 10_000)),
                         columns=[f"x{i}" for i in range(10_000)])
    wide = pd.concat([df, extra], axis=1)
    p = tmp_path / "wide.csv"
    wide.to_csv(p, index=False)
    t0 = time.perf_counter()
    out = validate_accounts(load_accounts(p), config_from_dict(_cfg_dict()))
    assert time.perf_counter() - t0 < 20
    assert out.shape == wide.shape


def test_iso_dates_with_and_without_times_are_read(base_accounts):
    cfg = config_from_dict(_cfg_dict(columns={**_cfg_dict()["columns"], "date": "signup"}))
    df = base_accounts.copy()
    df["signup"] = ["2021-03-04", "2021-03-05 10:00:00", "2021-03-06T11:00:00Z", None] * 100
    out = validate_accounts(df, cfg)
    assert out["signup"].notna().sum() == 300
    assert str(out.loc[1, "signup"]) == "2021-03-05 10:00:00+00:00"


def test_utf8_bom_header_is_read(tmp_path, base_accounts):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + base_accounts.to_csv(index=False).encode())
    out = validate_accounts(load_accounts(p), config_from_dict(_cfg_dict()))
    assert "account_id" in out.columns


# ----------------------------------------------------------------------------- a trained model
@dataclass
class Trained:
    root: Path
    cfg_path: Path  # config whose tracking.uri is the absolute SQLite store below
    discovery: object
    criteria_json: Path
    run: object  # the DiscoveryRun: run id, model versions


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fast tracked discovery on hostile-but-valid accounts (constant feature,
    one-member category, a 100k-character value, missing numbers)."""
    from threadpoolctl import threadpool_limits

    from icpml import run_discovery

    root = tmp_path_factory.mktemp("model")
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    cfg = _cfg_dict()
    cfg["tracking"]["uri"] = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    cfg_path = _write_cfg(root, cfg)
    df = make_accounts(300, seed=0)
    df["region"] = "EMEA"
    df.loc[0, "industry"] = "Aerospace"
    df.loc[1, "cloud_provider"] = LONG
    df.loc[2:20, "intent_score"] = np.nan
    with pytest.MonkeyPatch.context() as mp, threadpool_limits(1):
        mp.setenv("ICPML_PROJECT_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        run = run_discovery(config_from_dict(cfg, project_root=root), df, track=True,
                            report=False)
    crit = root / "criteria.json"
    crit.write_text(run.discovery.criteria.to_json())
    return Trained(root, cfg_path, run.discovery, crit, run)


def test_discovery_survives_hostile_but_valid_accounts(trained):
    res = trained.discovery
    assert "region" in res.screen.excluded
    assert any("'region' has the same value" in w for w in res.warnings)
    assert trained.run.model_versions["fit"].startswith("models:/demo-fit/")
    assert res.scored["fit_score"].between(0, 1).all()


def test_score_prospects_with_missing_columns_unseen_categories_and_inf(project, trained):
    prospects = make_accounts(60, seed=5).drop(columns=["arr", "nrr", "nps", "churned", "crm",
                                                        "industry"])
    prospects["cloud_provider"] = prospects["cloud_provider"].astype(object)
    prospects.loc[0, "cloud_provider"] = "Quantum Cloud"
    prospects.loc[1, "cloud_provider"] = "y" * 100_000
    prospects["intent_score"] = prospects["intent_score"].astype(float)
    prospects.loc[2, "intent_score"] = np.inf
    src = project.base / "prospects.csv"
    prospects.to_csv(src, index=False)
    digest = _sha(src)
    out = project.base / "scored.csv"
    result = runner.invoke(app, ["score", "--data", str(src), "--out", str(out),
                                 "--model", "models:/demo-fit@champion",
                                 "--config", str(trained.cfg_path)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    scored = pd.read_csv(out, keep_default_na=False)
    assert len(scored) == 60 and scored["fit_score"].between(0, 1).all()
    issues = scored["data_issues"]
    for row, needle in ((0, "column 'crm' missing"), (0, "column 'industry' missing"),
                        (0, "cloud_provider 'Quantum Cloud' never seen"),
                        (1, "cloud_provider 'yyyyyyyyyy"), (2, "intent_score is infinite")):
        assert needle in issues.iloc[row], (needle, issues.iloc[row])
    assert "never seen" not in issues.iloc[3] and "infinite" not in issues.iloc[3]
    assert issues.str.len().max() < 1000  # the 100k-character value is not repeated in full
    # and the log says it once for the whole table
    assert "'cloud_provider': 2 value(s) never seen" in result.output
    assert scored["top_reasons"].str.len().max() < 1000
    assert _sha(src) == digest
    assert not [f for f in _files(project.base) if f.endswith(".tmp")]


def test_score_empty_prospect_file(project, trained):
    src = project.base / "prospects.csv"
    src.write_bytes(b"")
    run = _invoke(project, ["score", "--data", str(src), "--out", str(project.base / "o.csv"),
                            "--config", str(trained.cfg_path)], [src])
    _assert_clean_failure(project, run, ExitCode.DATA, ["prospects.csv", "empty"])


# ----------------------------------------------------------------------------- infrastructure
def test_unreachable_tracking_store_fails_fast(project, base_accounts, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    data = project.base / "accounts.csv"
    base_accounts.to_csv(data, index=False)
    port = _closed_port()
    cfg = _cfg_dict()
    cfg["data"]["path"] = str(data)
    cfg["tracking"]["uri"] = f"http://127.0.0.1:{port}"
    cfg_path = _write_cfg(project.root, cfg)
    run = _invoke(project, ["discover", "--config", str(cfg_path)], [data, cfg_path])
    _assert_clean_failure(project, run, ExitCode.INFRA, [f"127.0.0.1:{port}", "tracking.uri"])
    assert run[1] < 15, f"took {run[1]:.1f}s: the store must be checked before training"


def test_score_with_unreachable_tracking_store(project, base_accounts):
    src = project.base / "prospects.csv"
    base_accounts.head(20).to_csv(src, index=False)
    cfg = _cfg_dict()
    cfg["tracking"]["uri"] = f"http://127.0.0.1:{_closed_port()}"
    cfg_path = _write_cfg(project.root, cfg)
    run = _invoke(project, ["score", "--data", str(src), "--out", str(project.base / "o.csv"),
                            "--config", str(cfg_path)], [src])
    _assert_clean_failure(project, run, ExitCode.INFRA, ["tracking store", "cannot be reached"])
    assert run[1] < 15


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores file permissions")
def test_read_only_reports_folder(project, base_accounts):
    data = project.base / "accounts.csv"
    base_accounts.to_csv(data, index=False)
    cfg = _cfg_dict()
    cfg["data"]["path"] = str(data)
    cfg_path = _write_cfg(project.root, cfg)
    reports = project.root / "reports"
    reports.chmod(0o555)
    try:
        run = _invoke(project, ["discover", "--config", str(cfg_path), "--no-track"],
                      [data, cfg_path])
    finally:
        reports.chmod(0o755)
    _assert_clean_failure(project, run, ExitCode.INFRA, ["reports", "permission denied"])
    assert run[1] < 15  # refused before training


def test_unwritable_reports_folder_is_refused_before_training(project, base_accounts,
                                                               monkeypatch):
    """The same refusal, simulated, so it also runs as root (which ignores chmod)."""
    import icpml.run

    data = project.base / "accounts.csv"
    base_accounts.to_csv(data, index=False)
    cfg = _cfg_dict()
    cfg["data"]["path"] = str(data)
    cfg_path = _write_cfg(project.root, cfg)
    reports = str(project.root / "reports")
    real_access = os.access
    monkeypatch.setattr(icpml.run.os, "access",
                        lambda p, mode, **kw: not str(p).startswith(reports)
                        and real_access(p, mode, **kw))
    run = _invoke(project, ["discover", "--config", str(cfg_path), "--no-track"], [data, cfg_path])
    _assert_clean_failure(project, run, ExitCode.INFRA, ["reports", "permission denied"])
    assert run[1] < 15


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_exporting(project, trained, monkeypatch):
    out = project.root / "reports" / "icp.sql"
    monkeypatch.setattr("icpml._io.os.replace", _disk_full)
    run = _invoke(project, ["export", "--criteria", str(trained.criteria_json), "--out", str(out)],
                  [trained.criteria_json])
    _assert_clean_failure(project, run, ExitCode.INFRA, ["icp.sql", "No space left on device"])


def test_disk_full_while_writing_scores(project, trained, monkeypatch):
    src = project.base / "prospects.csv"
    make_accounts(30, seed=9).to_csv(src, index=False)
    out = project.base / "scored.csv"
    real_to_csv = pd.DataFrame.to_csv

    def half_then_full(self, path=None, *args, **kwargs):
        target = getattr(path, "name", path)  # a path, or the open temporary file
        if target is not None and str(target).endswith(".tmp"):
            Path(target).write_text("account_id,fit_sc")  # a half-written file...
            _disk_full()  # ...then the disk fills up
        return real_to_csv(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_full)
    run = _invoke(project, ["score", "--data", str(src), "--out", str(out), "--no-reasons",
                            "--config", str(trained.cfg_path)], [src])
    _assert_clean_failure(project, run, ExitCode.INFRA, ["scored.csv", "No space left on device"])


def test_disk_full_while_writing_the_report(trained, tmp_path, monkeypatch):
    from icpml.report import write_report

    monkeypatch.setattr("icpml._io.os.replace", _disk_full)  # where the staged folder is put in place
    with pytest.raises(OutputError, match="No space left on device"):
        write_report(trained.discovery, tmp_path / "reports" / "run")
    assert _files(tmp_path) == set()  # the half-built report folder is removed


# ----------------------------------------------------------------------------- real stderr
@pytest.mark.parametrize("case", ["latin1-data", "unknown-config-key", "unreachable-tracking"])
def test_real_process_prints_one_line_and_no_traceback(project, base_accounts, case):
    data = project.base / "accounts.csv"
    cfg = _cfg_dict()
    cfg["data"]["path"] = str(data)
    args = ["discover", "--config", str(project.root / "cfg.yaml"), "--no-track"]
    df = base_accounts.copy()
    if case == "latin1-data":
        data.write_bytes(_latin1(df, cfg))
        code, needles = ExitCode.DATA, ["UTF-8", "'industry'"]
    else:
        df.to_csv(data, index=False)
        if case == "unknown-config-key":
            cfg["cohorts"]["best_quantlie"] = 0.2
            code, needles = ExitCode.CONFIG, ["cohorts.best_quantlie"]
        else:  # no MLFLOW_HTTP_* overrides: icpml itself must not wait on retries
            cfg["tracking"]["uri"] = f"http://127.0.0.1:{_closed_port()}"
            args.remove("--no-track")
            code, needles = ExitCode.INFRA, ["tracking.uri"]
    cfg_path = _write_cfg(project.root, cfg)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST"))}
    env.update(ICPML_PROJECT_ROOT=str(project.root), MPLBACKEND="Agg")
    before, digest = _files(project.base), _sha(data)
    proc = subprocess.run([sys.executable, "-m", "icpml", *args], capture_output=True, text=True,
                          env=env, cwd=project.base, timeout=90)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = _error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert not _error_lines(proc.stdout), proc.stdout
    assert _files(project.base) == before and _sha(data) == digest
    assert cfg_path.is_file()
