"""One `icpml demo` in a fresh project root, shared by the CLI and serving tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from _shared import use_project_root
from icpml.cli import app


@pytest.fixture(scope="package")
def demo_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = use_project_root(tmp_path_factory.mktemp("demo"), mp)
    result = CliRunner().invoke(app, ["demo", "--n", "1500"])
    yield root, result
    mp.undo()
