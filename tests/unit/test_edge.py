"""The pure core and the edge: discover() writes nothing and returns a frozen Discovery;
run_discovery() records beside it; MLflow's chatter is hidden only while icpml talks to it."""

from __future__ import annotations

import dataclasses
import logging
import warnings

import pytest

from icpml import demo_config, discover, make_accounts, run_discovery
from icpml.scoring import TIER_DEFINITIONS


def test_quiet_mlflow_is_scoped():
    from icpml.tracking import _quiet

    lg = logging.getLogger("mlflow")
    before_level, before_filters = lg.level, list(warnings.filters)
    lg.setLevel(logging.INFO)
    try:
        with _quiet():
            assert lg.level == logging.ERROR
        assert lg.level == logging.INFO  # the application's setting is back
        assert warnings.filters == before_filters
    finally:
        lg.setLevel(before_level)


@pytest.fixture(scope="module")
def small_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("edge")
    (root / ".icpml").write_text("")
    cfg = demo_config(project_root=root)
    return cfg.model_copy(update={"criteria": cfg.criteria.model_copy(
        update={"stability_resamples": 0})})


def test_discover_is_pure_and_frozen(small_cfg):
    accounts = make_accounts(400, seed=5)
    snapshot = accounts.copy()
    res = discover(small_cfg, accounts)
    root = small_cfg.project_root
    assert sorted(p.name for p in root.iterdir()) == [".icpml"]  # no mlruns, no reports
    assert accounts.equals(snapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.criteria = None  # type: ignore[misc]
    # the criteria stage built the CriteriaSet complete: tiers, provenance, stability
    assert res.criteria.tiers["definition"] == TIER_DEFINITIONS
    assert {"icpml_version", "library_versions", "fidelity", "stability"} <= set(res.criteria.meta)
    assert res.fit_model is res.scorer.fit_model and res.churn_model is res.scorer.churn_model


def test_run_discovery_records_beside_the_discovery(small_cfg, monkeypatch):
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(small_cfg.project_root))
    seen = []
    run = run_discovery(small_cfg, make_accounts(400, seed=6), track=False, report=True,
                        progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert run.run_id is None and run.model_versions == {} and run.model_aliases == {}
    assert run.report_dir.parent == small_cfg.resolve(small_cfg.report.dir)
    assert (run.report_dir / "report.html").is_file()
    assert (run.report_dir / "criteria.json").read_text() == run.discovery.criteria.to_json()
    assert not (small_cfg.project_root / "mlruns").exists()
    assert {t for _, _, t in seen} == {10}  # nine stages and the report, on one bar
    assert seen[-1] == ("report", 10, 10) and "report" in run.timings
    assert not hasattr(run.discovery, "report_dir")
