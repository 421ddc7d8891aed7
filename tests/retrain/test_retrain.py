"""Champion / challenger retraining as cron runs it: promotion, gate, idempotency, lock, diff."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from icpml.cli import app
from icpml.config import load_config
from icpml.criteria import CriteriaSet, Criterion
from icpml.errors import ExitCode
from icpml.retrain import LockedError, _lock, diff_criteria
from icpml.synthetic import make_accounts

runner = CliRunner()


@pytest.fixture()
def prod(tmp_path, monkeypatch, prod_factory):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("ICPML_PROJECT_ROOT", raising=False)
    return prod_factory(tmp_path / "prod", n=1200, experiment="retrain-test",
                     criteria={"n_bootstrap": 100})


def _retrain(root, *extra):
    return runner.invoke(app, ["retrain", "--config", str(root / "prod.yaml"), *extra])


def test_first_run_promotes_then_same_data_is_unchanged(prod):
    r1 = _retrain(prod)
    assert r1.exit_code == 0, r1.output
    assert "decision:  promoted" in r1.output
    history = json.loads((prod / "reports" / "promotions.json").read_text())
    assert [h["decision"] for h in history] == ["promoted"]
    index = (prod / "reports" / "index.md").read_text()
    assert "**Champion:** demo-fit version 1" in index and "report.html" in index

    r2 = _retrain(prod)  # same data, same config: idempotent, no new version
    assert r2.exit_code == 0 and "decision:  unchanged" in r2.output
    assert len(json.loads((prod / "reports" / "promotions.json").read_text())) == 1


def test_fresh_data_makes_a_challenger_with_diff_and_drift(prod):
    assert _retrain(prod).exit_code == 0
    make_accounts(1200, seed=5).to_csv(prod / "accounts.csv", index=False)
    r = _retrain(prod)
    assert r.exit_code == 0, r.output
    assert "Changes since the last champion" in r.output
    history = json.loads((prod / "reports" / "promotions.json").read_text())
    assert len(history) == 2 and history[-1]["version"] == "2"
    assert history[-1]["decision"] in ("promoted", "kept")
    assert history[-1]["previous_champion"] == "1"


def test_dry_run_logs_nothing(prod):
    r = _retrain(prod, "--dry-run")
    assert r.exit_code == 0 and "dry-run: would be promoted" in r.output
    assert not (prod / "reports" / "promotions.json").exists()


def test_gate_failure_with_degraded_champion_alerts(prod):
    assert _retrain(prod).exit_code == 0
    # the market changed: outcomes no longer follow the features
    make_accounts(1200, seed=9, signal=False).to_csv(prod / "accounts.csv", index=False)
    r = _retrain(prod)
    assert r.exit_code in (0, ExitCode.GATE), r.output
    history = json.loads((prod / "reports" / "promotions.json").read_text())
    if r.exit_code == ExitCode.GATE:
        assert history[-1]["decision"] == "alert"
        assert "champion no longer holds" in r.output
    else:  # the challenger passed the gate on its own evidence
        assert history[-1]["decision"] in ("promoted", "kept")


def test_lock_blocks_a_second_retrain(tmp_path):
    lock = tmp_path / "x.lock"
    with _lock(lock):
        with pytest.raises(LockedError, match="another retrain"):
            with _lock(lock):
                pass
    with _lock(lock):  # released afterwards
        pass


def test_diff_criteria_added_removed_changed():
    old = CriteriaSet(icp=[Criterion("icp", "employees", "between", low=100, high=500),
                           Criterion("icp", "crm", "in", values=("Salesforce",))],
                      anti_icp=[Criterion("anti_icp", "requires_onprem", "in", values=("True",))])
    new = CriteriaSet(icp=[Criterion("icp", "employees", "between", low=150, high=600),
                           Criterion("icp", "industry", "in", values=("SaaS",))],
                      anti_icp=[Criterion("anti_icp", "requires_onprem", "in", values=("True",))])
    d = diff_criteria(old, new)
    assert [e["criterion"] for e in d["added"]] == ["industry = SaaS"]
    assert [e["criterion"] for e in d["removed"]] == ["crm = Salesforce"]
    assert d["changed"][0]["was"] == "100 <= employees <= 500"
    assert d["changed"][0]["criterion"] == "150 <= employees <= 600"
    assert [e["criterion"] for e in d["unchanged"]] == ["requires_onprem = True"]


def test_bad_data_exit_code(prod):
    pd.DataFrame({"x": [1]}).to_csv(prod / "accounts.csv", index=False)
    r = _retrain(prod)
    assert r.exit_code == ExitCode.DATA and "missing column" in r.output


def test_config_validates_retrain_section(prod):
    cfg = yaml.safe_load((prod / "prod.yaml").read_text())
    cfg["retrain"] = {"max_auc_dropp": 0.1}
    (prod / "prod.yaml").write_text(yaml.safe_dump(cfg))
    r = _retrain(prod)
    assert r.exit_code == ExitCode.CONFIG and "retrain.max_auc_dropp" in r.output
    assert load_config  # imported for the API surface
