"""One `icpml demo` in a fresh project root, shared by the CLI and serving tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from icpml.cli import app


@pytest.fixture(scope="package")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("ICPML_PROJECT_ROOT", str(root))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = CliRunner().invoke(app, ["demo", "--n", "1500"])
    yield root, result
    mp.undo()
