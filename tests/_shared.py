"""Where the shared inputs live: ``../shared`` beside the repository (as CI lays it out).

``ICPML_CASES`` / ``ICPML_REAL_DATA`` point elsewhere (a git worktree is not next to shared/).
Tests that need a case folder skip with a reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CASES = Path(os.environ.get("ICPML_CASES") or SHARED / "cases")
REAL_DATA = Path(os.environ.get("ICPML_REAL_DATA") or SHARED / "data")


def case_dir(name: str) -> Path:
    """``shared/cases/<name>`` (read-only: copy it before running a command there); skips
    the calling test, with the path, when the folder is absent."""
    import pytest

    folder = CASES / name
    if not folder.is_dir():
        pytest.skip(f"case folder {folder} is absent")
    return folder


def use_project_root(root: Path, monkeypatch) -> Path:
    """Make ``root`` (created if absent) a project root: its ``.icpml`` marker, set as
    ``ICPML_PROJECT_ROOT``, no ``MLFLOW_TRACKING_URI`` (so its store is ``root/mlruns``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".icpml").touch()
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


def project_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess run in project root ``root`` (no ``MLFLOW_TRACKING_URI``,
    the Agg backend for plots) plus ``extra``."""
    env = {**os.environ, "ICPML_PROJECT_ROOT": str(root), "MPLBACKEND": "Agg", **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def compensated_interaction(effect: float, a, b, noise):
    """``effect * [A and B] + m_a [A] + m_b [B]``, the main effects ``m`` chosen so that A alone
    and B alone leave the top-quartile rate of that term plus ``noise`` unchanged (fixed-point
    iteration): a pure interaction, flat in each part alone (numpy bool arrays ``a``, ``b``)."""
    import numpy as np

    m = np.array([-effect * b.mean(), -effect * a.mean()])
    for _ in range(60):
        v = effect * (a & b) + m[0] * a + m[1] * b + noise
        top = v >= np.quantile(v, 0.75)
        gap = np.array([top[a].mean() - top[~a].mean(), top[b].mean() - top[~b].mean()])
        if np.abs(gap).max() < 0.002:
            break
        m -= 2.5 * gap
    return effect * (a & b) + m[0] * a + m[1] * b
