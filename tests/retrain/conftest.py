"""A production-like project folder for retraining tests: config + accounts, own store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from icpml.synthetic import make_accounts

REPO = Path(__file__).resolve().parents[2]


def make_prod(root: Path, *, n: int, experiment: str, criteria: dict) -> Path:
    """Write ``prod.yaml`` (the demo config reading ``accounts.csv``) and ``n`` accounts."""
    root.mkdir(exist_ok=True)
    (root / ".icpml").touch()
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data"]["path"] = "accounts.csv"
    cfg["tracking"]["experiment"] = experiment
    cfg["criteria"] = criteria
    (root / "prod.yaml").write_text(yaml.safe_dump(cfg))
    make_accounts(n, seed=0).to_csv(root / "accounts.csv", index=False)
    return root


@pytest.fixture()
def prod_factory():
    """:func:`make_prod`, for fixtures that tune size, experiment and criteria settings."""
    return make_prod
