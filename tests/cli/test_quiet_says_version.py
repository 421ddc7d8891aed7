"""Every command that uses a model says which version, also under ``--quiet`` (a cron log).

``icpml validate --model`` printed nothing at all under ``--quiet`` (its evidence is its
output) and named only the URI asked for (``models:/x-fit@champion``), never the version;
``icpml report --run models:/...`` and ``icpml export -c ... --out`` did not say which
version they used. Inputs generated here: a small wholesale-like table with a numeric
channel code whose value 2 is the ICP.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from _shared import use_project_root
from icpml.cli import app

runner = CliRunner()


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice([1, 2], size=n, p=[0.65, 0.35])
    region = rng.choice([1, 2, 3], size=n)
    spend = np.round(rng.lognormal(8 + 1.2 * (channel == 2), 0.5)).astype(int)
    return pd.DataFrame({"client": [f"C{seed}-{i:04d}" for i in range(n)], "Channel": channel,
                         "Region": region, "spend": spend})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Two discoveries of one config: version 1 @champion, version 2 @challenger."""
    mp = pytest.MonkeyPatch()
    root = use_project_root(tmp_path_factory.mktemp("quietver"), mp)
    mp.chdir(root)
    _table(300, 1).to_csv(root / "a.csv", index=False)
    _table(300, 2).to_csv(root / "b.csv", index=False)
    cfg = {"name": "qv", "columns": {"id": "client", "features": {"firmographic": ["Channel", "Region"]},
                                     "outcomes": [{"column": "spend", "direction": "higher"}]},
           "data": {"path": "a.csv"}, "criteria": {"stability_resamples": 0, "n_bootstrap": 100}}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    for data in ("a.csv", "b.csv"):
        res = runner.invoke(app, ["discover", "-c", "cfg.yaml", "--data", data])
        assert res.exit_code == 0, res.output
    yield root
    mp.undo()


def _stdout(res) -> str:
    assert res.exit_code == 0, res.output
    return res.stdout


def test_quiet_validate_prints_its_evidence_and_the_version(project):
    out = _stdout(runner.invoke(app, ["-q", "validate", "-c", "cfg.yaml", "--data", "b.csv",
                                      "--model", "models:/qv-fit@champion"]))
    # the champion is version 1 (the second discover's version 2 is @challenger)
    assert re.search(r"== models:/qv-fit@champion \(version 1, run [0-9a-f]{32}\): ", out), out
    assert "Outcomes per tier" in out and "Tier 1" in out
    assert "Channel" in out  # the criteria and their evidence


def test_validate_names_the_version_of_a_pinned_uri(project):
    out = _stdout(runner.invoke(app, ["-q", "validate", "-c", "cfg.yaml", "--data", "a.csv",
                                      "--model", "models:/qv-fit/2"]))
    assert re.search(r"== models:/qv-fit/2 \(version 2, run [0-9a-f]{32}\): ", out), out


def test_quiet_report_and_export_say_which_version(project):
    out = _stdout(runner.invoke(app, ["-q", "report", "-c", "cfg.yaml", "--run",
                                      "models:/qv-fit@champion"]))
    m = re.search(r"report: +(\S+) \(model models:/qv-fit@champion \(version 1, run ([0-9a-f]{32})\)\)", out)
    assert m, out
    assert m.group(2)[:8] in m.group(1)  # the restored folder is that version's run
    out = _stdout(runner.invoke(app, ["-q", "report", "-c", "cfg.yaml", "--run", "models:/qv-fit/2"]))
    assert re.search(r"\(model models:/qv-fit/2 \(version 2, run [0-9a-f]{32}\)\)", out), out
    out = _stdout(runner.invoke(app, ["-q", "export", "-c", "cfg.yaml", "--format", "sql",
                                      "--out", "icp.sql"]))
    assert re.search(r"written: +icp\.sql \(model models:/qv-fit@champion \(version 1, run ", out), out
    assert (project / "icp.sql").read_text(encoding="utf-8").count("WHERE") == 2


def test_exported_filters_name_their_model_version(project):
    """``export -c`` to stdout under --quiet: the only output is the filters, so they say
    where they came from (a comment), in SQL and in pandas; the pandas file still runs."""
    out = _stdout(runner.invoke(app, ["-q", "export", "-c", "cfg.yaml", "--format", "sql"]))
    assert re.search(r"^-- model: models:/qv-fit@champion \(version 1, run [0-9a-f]{32}\)$", out, re.M), out
    res = runner.invoke(app, ["-q", "export", "-c", "cfg.yaml", "--format", "pandas", "--out", "icp.py"])
    assert res.exit_code == 0, res.output
    text = (project / "icp.py").read_text(encoding="utf-8")
    assert re.search(r"^# model: models:/qv-fit@champion \(version 1, run [0-9a-f]{32}\)$", text, re.M)
    ns: dict = {}
    exec(compile(text, "icp.py", "exec"), ns)  # noqa: S102 - the file icpml wrote
    table = pd.read_csv(project / "b.csv")
    assert ns["icp_mask"](table).sum() > 0
    # a criteria.json file (no model) gets no model line
    out = _stdout(runner.invoke(app, ["-q", "export", "--criteria", str(next(
        (project / "reports").glob("qv_*/criteria.json"))), "--format", "sql"]))
    assert "-- model:" not in out
