"""Shared fixtures: seeded synthetic accounts and discoveries; no test writes into the repo."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from icpml import demo_config, discover, make_accounts  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_stores(tmp_path_factory, monkeypatch):
    """Every test gets a throwaway project root and tracking store unless it sets its own."""
    if "ICPML_PROJECT_ROOT" not in os.environ:
        root = tmp_path_factory.mktemp("root")
        monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def demo_cfg():
    return demo_config()


@pytest.fixture(scope="session")
def accounts():
    return make_accounts(2000, seed=0)


@pytest.fixture(scope="session")
def discovery(demo_cfg, accounts):
    return discover(demo_cfg, accounts)


@pytest.fixture(scope="session")
def nosignal_discovery(demo_cfg):
    return discover(demo_cfg, make_accounts(2000, seed=1, signal=False))
