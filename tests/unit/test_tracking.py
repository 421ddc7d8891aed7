"""Tracking-store resolution: env > config > SQLite inside the project (never the cwd)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icpml.config import demo_config
from icpml.errors import TrackingError
from icpml.tracking import _flatten, configure, tracking_uri


def test_default_store_is_sqlite_under_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = demo_config(project_root=tmp_path / "proj")
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path / 'proj' / 'mlruns' / 'mlflow.db'}"


def test_env_overrides_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(demo_config(project_root=tmp_path)) == "http://127.0.0.1:5999"


def test_relative_sqlite_in_config_resolves_from_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(Path("/"))
    cfg = demo_config(project_root=tmp_path).model_copy(
        update={"tracking": demo_config().tracking.model_copy(update={"uri": "sqlite:///t/x.db"})})
    assert tracking_uri(cfg) == f"sqlite:///{tmp_path / 't' / 'x.db'}"


def test_unusable_store_is_a_tracking_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with pytest.raises((TrackingError, OSError)):
        configure(demo_config(project_root=tmp_path))


def test_flatten_params():
    flat = _flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x" * 7000})
    assert flat["a.b"] == "1" and flat["a.c.d"] == "[1, 2]"
    assert len(flat["e"]) == 6000


def test_passwords_never_reach_params_or_messages():
    from icpml.tracking import redact

    uri = "postgresql://icp:s3cret@db.internal:5432/mlflow"
    assert redact(uri) == "postgresql://***@db.internal:5432/mlflow"
    assert "s3cret" not in _flatten({"tracking": {"uri": uri}})["tracking.uri"]
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    # password= settings too (DuckDB attach strings), without eating the quotes around them
    logged = json.dumps({"query": "ATTACH 'host=db password=hunter2' AS crm", "dsn": "password=hunter2"})
    shown = redact(logged)
    assert "hunter2" not in shown and json.loads(shown)["dsn"] == "password=***"
