"""The model a command uses is the one the user means (issue 15, part 2).

* registered names and the experiment come from the config's ``name``;
* ``icpml score -c cfg.yaml`` scores with that config's model @champion, from that config's
  store, and says which version and run it loaded;
* a re-run's versions are @challenger until ``icpml promote`` moves both champions;
* a table with none of the model's columns is exit 3 with no output, and a criterion
  column that is absent or empty is a warning naming it;
* reading never creates a tracking store.

Case ``score-ignores-config-model`` (from ../shared/cases) plus inputs generated here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from _shared import CASES
from icpml.cli import app
from icpml.errors import ExitCode

_HERE = Path(__file__).resolve()
#: ../shared/cases beside the repository (a worktree sits one folder deeper than the main repo)
CASE = CASES / "score-ignores-config-model"
runner = CliRunner()


def _client(root: Path):
    from mlflow import MlflowClient

    store = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=store, registry_uri=store)


def _alias(client, name: str, alias: str = "champion") -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


# ----------------------------------------------------------------------------- the case
@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The case folder, copied, after `discover -c a_region.yaml` then `-c b_industry.yaml`."""
    if not CASE.is_dir():
        pytest.skip(f"case folder {CASE} is absent (../shared/cases not checked out)")
    root = tmp_path_factory.mktemp("case") / "proj"
    shutil.copytree(CASE, root)
    mp = pytest.MonkeyPatch()
    mp.setenv("ICPML_PROJECT_ROOT", str(root))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.chdir(root)
    outputs = {}
    for cfg in ("a_region.yaml", "b_industry.yaml"):
        result = runner.invoke(app, ["discover", "-c", cfg, "--no-report"])
        assert result.exit_code == 0, result.output
        outputs[cfg] = result.output
    yield root, outputs
    mp.undo()


def test_each_config_registers_its_own_model_and_experiment(case):
    root, outputs = case
    assert "models:/a_region-fit/1 (@champion)" in outputs["a_region.yaml"]
    assert "experiment 'a_region'" in outputs["a_region.yaml"]  # not one shared "icpml"
    assert "models:/b-fit/1 (@champion)" in outputs["b_industry.yaml"]  # explicit name wins
    client = _client(root)
    assert _alias(client, "a_region-fit") == "1" and _alias(client, "b-fit") == "1"
    assert client.get_experiment_by_name("a_region") is not None


def test_score_with_config_uses_that_configs_model(case, tmp_path):
    root, _ = case
    accounts = pd.read_csv(root / "accounts.csv")
    by_cfg, explicit = tmp_path / "by_config.csv", tmp_path / "explicit.csv"
    r1 = runner.invoke(app, ["score", "-c", "b_industry.yaml", "--data", "accounts.csv",
                             "--out", str(by_cfg)])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["score", "-c", "b_industry.yaml", "--model", "models:/b-fit@champion",
                             "--data", "accounts.csv", "--out", str(explicit)])
    assert r2.exit_code == 0, r2.output
    a, b = pd.read_csv(by_cfg), pd.read_csv(explicit)
    assert a["tier"].tolist() == b["tier"].tolist()
    # the right value: b_industry's ICP is "industry = SaaS", so Tier 1 is exactly the SaaS accounts
    tier1 = set(a.loc[a["tier"] == "Tier 1", "account_id"])
    assert tier1 == set(accounts.loc[accounts["industry"] == "SaaS", "account_id"])
    assert len(tier1) == 47
    run_id = _client(root).get_model_version("b-fit", "1").run_id
    assert f"model: models:/b-fit@champion (version 1, run {run_id})" in r1.output
    assert "is not the model of config" not in r2.output


def test_score_warns_when_model_and_config_disagree(case, tmp_path):
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["score", "-c", "b_industry.yaml", "--model",
                                 "models:/a_region-fit@champion", "--data", "accounts.csv",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "is not the model of config 'b_industry' (b-fit)" in result.output
    assert "model: models:/a_region-fit@champion (version 1" in result.output


def test_score_without_config_in_a_store_of_several_models_asks_which(case, tmp_path):
    result = runner.invoke(app, ["score", "--data", "accounts.csv", "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == ExitCode.CONFIG
    assert "a_region-fit, b-fit" in result.output and "--config" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_score_with_a_config_never_discovered_names_what_the_store_holds(case, tmp_path):
    out = tmp_path / "o.csv"
    result = runner.invoke(app, ["score", "-c", "a_fixed.yaml", "--data", "accounts.csv",
                                 "--out", str(out)])
    assert result.exit_code == ExitCode.INFRA
    assert "no model 'a_fixed-fit'" in result.output
    assert "it holds a_region-fit, b-fit" in result.output  # never silently another one
    assert not out.exists()


def test_quiet_score_still_names_the_model_version(case, tmp_path):
    """--quiet drops the info lines, but the one output line says which model version scored
    (a scheduled job's log must tell which model its rows came from)."""
    result = runner.invoke(app, ["--quiet", "score", "-c", "b_industry.yaml", "--data",
                                 "accounts.csv", "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert "model:" not in result.output
    scored = [line for line in result.output.splitlines() if line.startswith("scored:")]
    assert len(scored) == 1 and re.search(r"\(model models:/\S+ \(version \d+", scored[0]), scored


def test_no_usable_column_is_exit_3_without_output(case, tmp_path):
    root, _ = case
    src = tmp_path / "ids_only.csv"
    pd.read_csv(root / "accounts.csv")[["account_id", "region", "arr"]].to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "-c", "b_industry.yaml", "--data", str(src),
                                 "--out", str(out)])
    assert result.exit_code == ExitCode.DATA
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "industry" in errors[0] and "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".scored.csv*"))


def test_empty_criterion_column_is_named_with_the_tiers_it_costs(case, tmp_path):
    root, _ = case
    df = pd.read_csv(root / "accounts.csv")
    df["industry"] = np.nan
    src = tmp_path / "blank_industry.csv"
    df.to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", "-c", "b_industry.yaml", "--data", str(src),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ("column 'industry' is empty in every row: ICP criterion 'industry = SaaS' cannot "
            "hold, so no account can reach Tier 1 (the tiers of all 160 accounts)") in result.output
    assert (pd.read_csv(out)["tier"] != "Tier 1").all()


def test_rerun_after_fixing_a_config_is_challenger_and_says_how_to_promote(case, tmp_path):
    """The trap: a_region.yaml fixed in place (same name) -> @challenger; score keeps v1 and says so."""
    root, _ = case
    fixed = yaml.safe_load((root / "a_fixed.yaml").read_text())
    fixed["name"] = "a_region"  # the user corrected a_region.yaml's feature list
    (root / "a_region_v2.yaml").write_text(yaml.safe_dump(fixed))
    result = runner.invoke(app, ["discover", "-c", "a_region_v2.yaml", "--no-report"])
    assert result.exit_code == 0, result.output
    assert "models:/a_region-fit/2 (@challenger)" in result.output
    assert ("icpml score keeps using version 1 (@champion) until you promote version 2: "
            "icpml promote -c a_region_v2.yaml --version 2") in result.output
    before = runner.invoke(app, ["score", "-c", "a_region_v2.yaml", "--data", "accounts.csv",
                                 "--out", str(tmp_path / "v1.csv")])
    assert before.exit_code == 0 and "(version 1, run" in before.output
    v1 = pd.read_csv(tmp_path / "v1.csv")["tier"]  # v1 knows region only
    promoted = runner.invoke(app, ["promote", "-c", "a_region_v2.yaml", "--version", "2"])
    assert promoted.exit_code == 0, promoted.output
    assert "a_region-fit version 2 to @champion (was version 1)" in promoted.output
    after = runner.invoke(app, ["score", "-c", "a_region_v2.yaml", "--data", "accounts.csv",
                                "--out", str(tmp_path / "v2.csv")])
    assert after.exit_code == 0 and "(version 2, run" in after.output
    v2 = pd.read_csv(tmp_path / "v2.csv")["tier"]
    assert (v2 == "Tier 1").sum() == 47  # the SaaS accounts: version 2's industry ICP
    assert not v1.equals(v2)  # before the promotion, score used version 1, as it said
    bad = runner.invoke(app, ["promote", "-c", "a_region_v2.yaml", "--version", "9"])
    assert bad.exit_code == ExitCode.CONFIG and "its versions: 1, 2" in bad.output
    assert _alias(_client(root), "a_region-fit") == "2"


# ----------------------------------------------------------------------------- generated inputs
def _accounts(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Accounts whose value follows ``segment == 'core'`` and churn follows ``plan == 'basic'``."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(["core", "edge", "far", "mid"], n)
    plan = rng.choice(["basic", "pro"], n)
    arr = rng.lognormal(10, 0.3, n) * np.where(segment == "core", 4.0, 1.0)
    churned = rng.random(n) < np.where(plan == "basic", 0.6, 0.15)
    return pd.DataFrame({"acct": [f"X{i:04d}" for i in range(n)], "segment": segment,
                         "plan": plan, "arr": arr.round(2), "churned": churned})


def _gen_config(root: Path, name: str) -> Path:
    cfg = {"name": name,
           "columns": {"id": "acct", "features": {"firmographic": ["segment", "plan"]},
                       "outcomes": [{"column": "arr"}], "churn": "churned"},
           "data": {"path": "accounts.csv"},
           "models": {"max_iter": 10, "cv_folds": 2, "min_samples_leaf": 5},
           "criteria": {"n_bootstrap": 50, "stability_resamples": 0}}
    p = root / f"{name.replace('/', '_').replace(' ', '_')}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One discovery (untracked), then logged twice as two runs of config 'Acme EU/2025'."""
    from icpml.config import load_config
    from icpml.pipeline import discover
    from icpml.tracking import log_discovery

    root = tmp_path_factory.mktemp("gen")
    (root / ".icpml").write_text("")
    _accounts().to_csv(root / "accounts.csv", index=False)
    path = _gen_config(root, "Acme EU/2025")
    mp = pytest.MonkeyPatch()
    mp.setenv("ICPML_PROJECT_ROOT", str(root))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(path)
    res = discover(cfg)  # a notebook's call: tracks and writes nothing unless asked
    untracked = (hasattr(res, "run_id"), hasattr(res, "report_dir"), (root / "mlruns").exists(),
                 (root / "reports").exists())
    one, two = log_discovery(res), log_discovery(res)
    first, second = (one.run_id, dict(one.model_aliases)), (two.run_id, dict(two.model_aliases))
    yield root, path, cfg, res, untracked, first, second
    mp.undo()


def test_python_discover_tracks_nothing_unless_asked(generated):
    *_, untracked, _, _ = generated
    assert untracked == (False, False, False, False)


def test_names_from_config_name_sanitised_first_run_champion_later_challenger(generated):
    root, _, cfg, _, _, first, second = generated
    assert cfg.tracking.fit_model_name == "Acme-EU-2025-fit"
    assert cfg.tracking.churn_model_name == "Acme-EU-2025-churn"
    assert cfg.tracking.experiment == "Acme EU/2025"
    assert first[1] == {"fit": "champion", "churn": "champion"}
    assert second[1] == {"fit": "challenger", "churn": "challenger"}
    client = _client(root)
    assert client.get_registered_model("Acme-EU-2025-fit").tags["icpml.kind"] == "fit"
    runs = {v: client.get_model_version("Acme-EU-2025-churn", v).run_id for v in ("1", "2")}
    assert runs == {"1": first[0], "2": second[0]}


def test_promote_moves_both_aliases_and_rolls_back_on_failure(generated, monkeypatch):
    from mlflow import MlflowClient

    root, path, *_ = generated
    client = _client(root)
    fit, churn = "Acme-EU-2025-fit", "Acme-EU-2025-churn"
    result = runner.invoke(app, ["promote", "-c", str(path), "--version", "2"])
    assert result.exit_code == 0, result.output
    assert f"{fit} version 2 and {churn} version 2 to @champion (was version 1)" in result.output
    assert (_alias(client, fit), _alias(client, churn)) == ("2", "2")
    # recorded like a retraining's promotion
    history = json.loads((root / "reports" / "promotions.json").read_text())
    assert [(h["version"], h["decision"], h["previous_champion"]) for h in history] == \
        [("2", "promoted", "1")]
    run_id = client.get_model_version(fit, "2").run_id
    assert client.get_run(run_id).data.tags["icpml.decision"] == "promoted"
    again = runner.invoke(app, ["promote", "-c", str(path), "--version", "2"])
    assert again.exit_code == 0 and "already @champion; nothing changed" in again.output

    real = MlflowClient.set_registered_model_alias

    def fit_alias_fails(self, name, alias, version):
        if name == fit:
            raise OSError("disk I/O error")
        return real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", fit_alias_fails)
    failed = runner.invoke(app, ["promote", "-c", str(path), "--version", "1"])
    monkeypatch.undo()
    assert failed.exit_code == ExitCode.INFRA
    assert "failed and was undone" in failed.output
    # the churn alias had moved first; it is back, so the pair still comes from one run
    assert (_alias(client, fit), _alias(client, churn)) == ("2", "2")


def test_score_without_model_or_config_uses_the_stores_only_model(generated, tmp_path):
    root, *_ = generated
    src = tmp_path / "prospects.csv"
    _accounts(50, seed=3).drop(columns=["arr", "churned"]).to_csv(src, index=False)
    result = runner.invoke(app, ["score", "--data", str(src), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert "model: models:/Acme-EU-2025-fit@champion (version" in result.output


def test_missing_criterion_column_names_it(generated, tmp_path):
    _, path, _, res, *_ = generated
    icp_cols = sorted({c for crit in res.criteria.icp for c in crit.columns})
    assert icp_cols, res.criteria.verdict
    col = icp_cols[0]
    src = tmp_path / "prospects.csv"
    _accounts(30, seed=4).drop(columns=["arr", "churned", col]).to_csv(src, index=False)
    result = runner.invoke(app, ["score", "-c", str(path), "--data", str(src),
                                 "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert f"column '{col}' is missing: ICP criterion '" in result.output
    assert "so no account can reach Tier 1 (the tiers of all 30 accounts)" in result.output


def test_first_version_is_champion_only_once_the_run_completed(tmp_path, monkeypatch, generated):
    """A run that fails after registering the fit model leaves no version and no alias; the
    next complete run of the name becomes @champion."""
    import dataclasses

    import icpml.tracking as tracking
    from icpml.config import load_config

    _, _, _, res, *_ = generated
    root = tmp_path / "fresh"
    root.mkdir()
    (root / ".icpml").write_text("")
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    res = dataclasses.replace(res, config=load_config(_gen_config(root, "fresh")))
    real = tracking._register

    def churn_fails(name, *args, **kw):
        if name == "churn_model":
            raise OSError("no space left on device")
        return real(name, *args, **kw)

    monkeypatch.setattr(tracking, "_register", churn_fails)
    with pytest.raises(tracking.TrackingError):
        tracking.log_discovery(res)
    client = _client(root)
    assert client.search_model_versions("name='fresh-fit'") == []
    # nor an empty registered model, which `icpml score` without --config would pick up
    assert client.search_registered_models() == []
    monkeypatch.setattr(tracking, "_register", real)
    logged = tracking.log_discovery(res)
    assert logged.model_aliases == {"fit": "champion", "churn": "champion"}
    assert _alias(client, "fresh-fit") is not None and _alias(client, "fresh-churn") is not None


# ----------------------------------------------------------------------------- no store by a read
def test_score_from_another_folder_creates_no_store(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.delenv("ICPML_PROJECT_ROOT", raising=False)
    monkeypatch.chdir(elsewhere)
    _accounts(20).to_csv(elsewhere / "p.csv", index=False)
    result = runner.invoke(app, ["score", "--data", "p.csv", "--out", "o.csv"])
    assert result.exit_code == ExitCode.INFRA
    assert f"no tracking store at '{elsewhere.resolve() / 'mlruns' / 'mlflow.db'}'" in result.output
    assert "--config" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert "icpml discover" in result.output and "icpml demo" not in result.output
    assert sorted(p.name for p in elsewhere.iterdir()) == ["p.csv"]
    # a config whose own store does not exist yet: same, named after the config
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".icpml").write_text("")
    cfg = _gen_config(proj, "newco")
    result = runner.invoke(app, ["score", "-c", str(cfg), "--data", "p.csv", "--out", "o.csv"])
    assert result.exit_code == ExitCode.INFRA and "config 'newco'" in result.output
    report = runner.invoke(app, ["report", "--run", "models:/newco-fit@champion", "-c", str(cfg)])
    assert report.exit_code == ExitCode.INFRA
    assert not (proj / "mlruns").exists() and not (proj / "reports").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["p.csv"]


def test_run_named_like_its_report_folder_and_metrics_logged_once(generated):
    """Issue 17: the run name is the report folder's (<name>_<run id[:8]>), and each metric
    has one name (no flat fit_holdout_roc_auc beside fit.holdout_roc_auc)."""
    root, _, cfg, _, _, (run_id, _), _ = generated
    run = _client(root).get_run(run_id)
    assert run.data.tags["mlflow.runName"] == f"Acme_EU_2025_{run_id[:8]}"  # = its report folder
    metrics = run.data.metrics
    assert "fit.holdout_roc_auc" in metrics
    assert not [k for k in metrics if k.startswith(("fit_", "churn_"))], sorted(metrics)
