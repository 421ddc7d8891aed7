"""Shared fixtures and the cost tiers of the suite.

Tiers (markers, set here by directory so a new test file needs no marker of its own):

* **unit** (no marker; the default ``pytest``): ``tests/unit/``. Small hand-made objects,
  at most the session's :func:`small_discovery` (600 synthetic rows, no tracking, no report).
  The whole tier takes 75 s of CPU (about 40 s with ``-n 2`` on 2 idle cores).
* ``integration`` (``pytest -m integration``): ``tests/model/``, ``tests/robustness/``,
  ``tests/retrain/``, ``tests/hostile/``, ``tests/data/`` and **any other directory** not named
  here: full discoveries, tracking stores, subprocesses, real datasets, planted signals.
* ``e2e`` (``pytest -m e2e``): ``tests/cli/`` and ``tests/notebooks/``: the command line,
  the model server, Chromium, Spark, the notebooks.
* ``slow`` is an extra marker on the heaviest integration/e2e tests; the default run leaves it
  out, ``-m integration`` / ``-m e2e`` include it.

A test in ``tests/unit/`` that needs a full discovery (the 2,000-row :func:`discovery` and
:func:`nosignal_discovery` fixtures, or the CLI ``demo_run``) is moved to ``integration``
automatically. To put a single test in another tier, mark it (``@pytest.mark.integration`` or
``@pytest.mark.e2e``): an explicit tier marker wins over the directory. To run one file of any
tier without its marker expression: ``pytest -m "" tests/model/test_planted.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from icpml import demo_config, discover, make_accounts, run_discovery  # noqa: E402

TIERS = ("integration", "e2e")
#: top-level folders of tests/ and their tier; a folder not listed is ``integration``
DIRECTORY_TIER = {
    "unit": None,
    "model": "integration", "robustness": "integration", "retrain": "integration",
    "hostile": "integration", "data": "integration",
    "cli": "e2e", "notebooks": "e2e",
}
#: fixtures that make a unit test an integration test (a full discovery or a CLI demo run)
HEAVY_FIXTURES = {"discovery": "integration", "nosignal_discovery": "integration",
                  "demo_run": "e2e"}
TESTS = Path(__file__).resolve().parent


def tier_of(item: pytest.Item) -> str | None:
    """The tier of one collected test: its explicit marker, else a heavy fixture it uses, else
    its directory (``None`` is the default unit tier)."""
    for tier in TIERS:
        if item.get_closest_marker(tier) is not None:
            return tier
    try:
        parts = Path(str(item.path)).resolve().relative_to(TESTS).parts
    except ValueError:  # collected from outside tests/ (doctests in src/icpml): unit
        parts = ()
    # a module directly in tests/ (or a doctest) is a unit test
    tier = DIRECTORY_TIER.get(parts[0], "integration") if len(parts) > 1 else None
    if tier is None:
        for name in getattr(item, "fixturenames", ()):
            if name in HEAVY_FIXTURES:
                return HEAVY_FIXTURES[name]
    return tier


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test with its tier before ``-m`` selects (see the module docstring)."""
    for item in items:
        tier = tier_of(item)
        if tier is not None and item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


# ----------------------------------------------------------------------------- project roots
@pytest.fixture(autouse=True)
def _isolated_stores(tmp_path_factory, monkeypatch):
    """Every test gets a throwaway project root and tracking store unless it sets its own."""
    if "ICPML_PROJECT_ROOT" not in os.environ:
        root = tmp_path_factory.mktemp("root")
        monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture()
def project_root(tmp_path, monkeypatch):
    """An empty project root ``tmp_path/proj`` (its ``.icpml`` marker, own tracking store) set as
    ``ICPML_PROJECT_ROOT``; the working directory is ``tmp_path``, deliberately not the root."""
    from _shared import use_project_root

    root = use_project_root(tmp_path / "proj", monkeypatch)
    monkeypatch.chdir(tmp_path)
    return root


@pytest.fixture()
def case_project(tmp_path, monkeypatch):
    """``case_project(name)``: a copy of ``shared/cases/<name>`` (its own project root, set as
    ``ICPML_PROJECT_ROOT`` and the working directory); skips when the case folder is absent."""
    import shutil

    from _shared import case_dir, use_project_root

    def copy(name: str) -> Path:
        work = tmp_path / name
        shutil.copytree(case_dir(name), work)
        monkeypatch.chdir(work)
        return use_project_root(work, monkeypatch)

    return copy


# ----------------------------------------------------------------------------- discoveries
@pytest.fixture(scope="session")
def demo_cfg():
    return demo_config()


@pytest.fixture(scope="session")
def accounts():
    return make_accounts(2000, seed=0)


@pytest.fixture(scope="session")
def small_accounts():
    """600 synthetic accounts with the planted signal (seed 0)."""
    return make_accounts(600, seed=0)


@pytest.fixture(scope="session")
def small_discovery(demo_cfg, small_accounts):
    """The unit tier's one discovery: 600 accounts, 2 stability refits, no tracking, no report."""
    cfg = demo_cfg.model_copy(update={
        "criteria": demo_cfg.criteria.model_copy(update={"stability_resamples": 2})})
    return discover(cfg, small_accounts)


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory):
    """A discovery as small as the ``tiny-report-crash`` case, with its report: 18 generated
    accounts, 3 per cohort (a fit model no better than chance, CV unmeasurable), no tracking."""
    from _shared import use_project_root

    mp = pytest.MonkeyPatch()
    root = use_project_root(tmp_path_factory.mktemp("tiny"), mp)
    cfg = demo_config(project_root=root)
    cfg = cfg.model_copy(update={
        "cohorts": cfg.cohorts.model_copy(update={"min_per_cohort": 3}),
        "criteria": cfg.criteria.model_copy(update={"stability_resamples": 0, "n_bootstrap": 50})})
    try:
        return run_discovery(cfg, make_accounts(18, seed=1), track=False, report=True)
    finally:
        mp.undo()  # the root is not left set for the rest of the session


@pytest.fixture(scope="session")
def discovery(demo_cfg, accounts):
    """A full discovery on 2,000 accounts (integration tier: a unit test using it is moved)."""
    return discover(demo_cfg, accounts)


@pytest.fixture(scope="session")
def nosignal_discovery(demo_cfg):
    return discover(demo_cfg, make_accounts(2000, seed=1, signal=False))
