"""``icpml retrain`` (a cron job) on fresh rows whose outcomes are scrambled: alert, exit 4.

Found on a wholesale-like table (a numeric channel code whose value 2 is the ICP): the
challenger found no reliable ICP, its AUC (0.51) did not trail the degraded champion's (0.44),
so it was promoted with exit 0 and every criterion removed. It must not be promoted: the run
alerts (exit 4) and the champion stays. Inputs generated here.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from _shared import use_project_root
from icpml.cli import app
from icpml.errors import ExitCode

runner = CliRunner()
SPEND = ["fresh", "grocery", "detergents"]


def _clients(n: int, seed: int, prefix: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice([1, 2], size=n, p=[0.68, 0.32])
    df = pd.DataFrame({"client": [f"{prefix}{i:04d}" for i in range(n)], "Channel": channel,
                       "Region": rng.choice([1, 2, 3], size=n, p=[0.2, 0.1, 0.7])})
    for j, c in enumerate(SPEND):
        df[c] = np.round(np.exp(8 + (1.2 - 0.3 * j) * (channel == 2) + rng.normal(0, 0.6, n)))
    return df


@pytest.mark.parametrize("seed", [0, 1])
def test_scrambled_outcomes_alert_and_keep_the_champion(tmp_path, monkeypatch, seed):
    root = use_project_root(tmp_path / "p", monkeypatch)
    monkeypatch.chdir(root)
    _clients(400, seed, "A").to_csv(root / "clients.csv", index=False)
    cfg = {"name": "ws", "columns": {"id": "client", "features": {"firmographic": ["Channel", "Region"]},
                                     "outcomes": [{"column": c} for c in SPEND]},
           "data": {"path": "clients.csv"}, "criteria": {"stability_resamples": 0, "n_bootstrap": 100}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    first = runner.invoke(app, ["discover", "-c", "cfg.yaml", "--no-report"])
    assert first.exit_code == 0 and "Channel = 2" in first.output, first.output
    fresh = pd.concat([_clients(400, seed, "A"), _clients(120, 10 + seed, "N")], ignore_index=True)
    # fresh rows that still follow the channel: promoted or kept, the quiet line says which
    # version is @champion now, and why
    fresh.to_csv(root / "more.csv", index=False)
    r = runner.invoke(app, ["-q", "retrain", "-c", "cfg.yaml", "--data", "more.csv"])
    assert r.exit_code == 0, r.output
    m = re.search(r"decision:  (promoted \(ws-fit version 2 is @champion; was version 1\)"
                  r"|kept \(ws-fit version 1 stays @champion; version 2 is @challenger\))", r.stdout)
    assert m and "  - fit AUC " in r.stdout, r.stdout
    champion = "2" if m.group(1).startswith("promoted") else "1"
    rng = np.random.default_rng(100 + seed)
    for c in SPEND:  # the outcomes no longer follow anything
        fresh[c] = rng.permutation(fresh[c].to_numpy())
    fresh.to_csv(root / "fresh.csv", index=False)
    r = runner.invoke(app, ["-q", "retrain", "-c", "cfg.yaml", "--data", "fresh.csv"])
    last = json.loads((root / "reports" / "promotions.json").read_text())[-1]
    if last["challenger"]["icp_found"]:  # the challenger found some ICP on the noise:
        assert r.exit_code in (0, ExitCode.GATE), r.output   # the gate decides on its evidence
        return
    assert r.exit_code == ExitCode.GATE, r.output
    assert last["decision"] == "alert" and last["version"] == "3"
    assert any("found no reliable ICP" in w for w in last["reasons"])
    # under --quiet the alert says which version stays, and why
    assert f"decision:  alert (ws-fit version {champion} stays @champion; version 3 is @challenger)" \
        in r.stdout, r.stdout
    assert "found no reliable ICP" in r.stdout
    out = runner.invoke(app, ["-q", "score", "-c", "cfg.yaml", "--data", "fresh.csv", "--out", "s.csv"])
    assert f"(version {champion}, run" in out.stdout  # the champion with its ICP still scores
