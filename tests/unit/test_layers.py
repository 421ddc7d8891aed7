"""The import layering is a contract: `lint-imports` (import-linter, [tool.importlinter] in
pyproject.toml) keeps the edge above the pure core, the stages away from tracking / report /
cli, the leaf layer a leaf, and no cycles. Plus the purity the layering is for."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> str:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return exe


def test_import_contracts_are_kept():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_a_stage_importing_tracking_breaks_the_contract(tmp_path):
    """The contract is not vacuous: a copy of the package where a stage imports the
    tracking module (and so closes a cycle through the edge) fails the check."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "icpml", src / "icpml",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cohorts = src / "icpml" / "cohorts.py"
    cohorts.write_text(cohorts.read_text() + "\n\ndef _leak():\n    from icpml import tracking\n"
                       "    return tracking\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(src)}
    run = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "Stages never import tracking, report, cli or the edge BROKEN" in run.stdout


def test_discovery_is_frozen_and_carries_no_run_state():
    from icpml.pipeline import Discovery

    assert Discovery.__dataclass_params__.frozen
    names = {f.name for f in dataclasses.fields(Discovery)}
    assert not names & {"run_id", "report_dir", "model_versions", "model_aliases", "extras",
                        "retrain"}


def test_discover_signature_has_no_side_effect_switches():
    import inspect

    from icpml.pipeline import discover

    assert not {"track", "report"} & set(inspect.signature(discover).parameters)
