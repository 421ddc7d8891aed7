"""Retraining on evolving synthetic data: the planted ICP shifts between runs.

* a shift (the industries that convert change) -> the challenger is promoted and the
  criteria diff names the new industries;
* a challenger trained on corrupted labels is not promoted over a champion that still holds;
* a retrain killed midway (SIGTERM) leaves the champion and the promotion history untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from icpml.cli import app
from icpml.errors import ExitCode
from icpml.synthetic import make_accounts

runner = CliRunner()
# the planted ICP industries move: SaaS/FinTech accounts now behave like Manufacturing/Retail ones
SHIFT = {"SaaS": "Manufacturing", "Manufacturing": "SaaS", "FinTech": "Retail", "Retail": "FinTech"}


@pytest.fixture()
def prod(tmp_path, monkeypatch, prod_factory):
    root = prod_factory(tmp_path / "prod", n=2000, experiment="retrain-evolving",
                     criteria={"n_bootstrap": 100, "stability_resamples": 3})
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    r = runner.invoke(app, ["retrain", "--config", str(root / "prod.yaml")])
    assert r.exit_code == 0 and "promoted" in r.output, r.output
    return root


def _history(root):
    return json.loads((root / "reports" / "promotions.json").read_text())


def test_shifted_icp_is_promoted_and_the_diff_shows_it(prod):
    fresh = make_accounts(2000, seed=7)
    fresh["industry"] = fresh["industry"].map(lambda v: SHIFT.get(v, v))
    fresh.to_csv(prod / "accounts.csv", index=False)
    r = runner.invoke(app, ["retrain", "--config", str(prod / "prod.yaml")])
    assert r.exit_code == 0, r.output
    h = _history(prod)[-1]
    assert h["decision"] == "promoted", h
    assert "Manufacturing" in r.output and "Retail" in r.output  # the diff names the shift
    assert "industry in {FinTech, SaaS}" in r.output               # ... and what it replaced


def test_challenger_on_corrupted_labels_is_not_promoted(prod):
    fresh = make_accounts(2000, seed=8)
    rng = np.random.default_rng(0)
    rows = rng.random(len(fresh)) < 0.8  # most outcomes scrambled across accounts
    for c in ("arr", "nrr", "nps", "churned"):
        vals = fresh.loc[rows, c].to_numpy()
        fresh.loc[rows, c] = rng.permutation(vals)
    fresh.to_csv(prod / "accounts.csv", index=False)
    r = runner.invoke(app, ["retrain", "--config", str(prod / "prod.yaml")])
    # the challenger fails the gate and the champion no longer holds on the scrambled data
    assert r.exit_code == ExitCode.GATE, r.output
    assert _history(prod)[-1]["decision"] == "alert"
    assert "version 1" in (prod / "reports" / "index.md").read_text()


def test_killed_retrain_leaves_the_champion(prod):
    make_accounts(2000, seed=9).to_csv(prod / "accounts.csv", index=False)
    before = _history(prod)
    env = {**os.environ, "ICPML_PROJECT_ROOT": str(prod), "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-m", "icpml", "retrain", "-c", "prod.yaml"],
                            cwd=prod, env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if "stage=explain" in line:
            proc.send_signal(signal.SIGTERM)
            break
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 143, err[-1500:]
    assert "Traceback" not in err
    assert _history(prod) == before
    from mlflow import MlflowClient

    store = f"sqlite:///{prod / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    assert str(client.get_model_version_by_alias("demo-fit", "champion").version) == "1"
    assert sorted(str(v.version) for v in client.search_model_versions("name='demo-fit'")) == ["1"]
    assert not (prod / "mlruns" / ".retrain.lock").exists() or _lock_free(prod)


def _lock_free(root) -> bool:
    from icpml.retrain import _lock

    with _lock(root / "mlruns" / ".retrain.lock"):
        return True
