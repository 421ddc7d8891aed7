"""Tracking-store resolution: env > config > SQLite inside the project (never the cwd)."""

from __future__ import annotations

import json
import os
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
    with pytest.raises(TrackingError, match="cannot be created") as err:  # not a bare OSError
        configure(demo_config(project_root=tmp_path))
    assert f"'{blocker}/sub'" in str(err.value) and "MLFLOW_TRACKING_URI" in str(err.value)
    assert "\n" not in str(err.value)


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


def _cfg(**top) -> dict:
    return {"columns": {"id": "a", "features": {"firmographic": ["x"]},
                        "outcomes": [{"column": "y"}]}, **top}


def test_model_names_and_experiment_come_from_the_config_name():
    from icpml.config import config_from_dict

    t = config_from_dict(_cfg(name="acme")).tracking
    assert (t.experiment, t.fit_model_name, t.churn_model_name) == ("acme", "acme-fit", "acme-churn")
    t = config_from_dict(_cfg(name="Acme EU/2025: Q1")).tracking  # sanitised for the registry
    assert (t.fit_model_name, t.churn_model_name) == ("Acme-EU-2025-Q1-fit", "Acme-EU-2025-Q1-churn")
    assert t.experiment == "Acme EU/2025: Q1"
    t = config_from_dict(_cfg()).tracking  # no name: the default name
    assert (t.experiment, t.fit_model_name) == ("icpml", "icpml-fit")
    # explicit keys win, each on its own
    t = config_from_dict(_cfg(name="acme", tracking={"fit_model_name": "mine"})).tracking
    assert (t.experiment, t.fit_model_name, t.churn_model_name) == ("acme", "mine", "acme-churn")
    t = config_from_dict(_cfg(name="acme", tracking={"experiment": "e"})).tracking
    assert (t.experiment, t.fit_model_name) == ("e", "acme-fit")


def test_two_configs_never_share_a_model_by_default():
    from icpml.config import config_from_dict

    names = {config_from_dict(_cfg(name=n)).tracking.fit_model_name for n in ("a", "b", "wcat")}
    assert len(names) == 3


def test_unregistrable_model_name_is_a_config_error():
    from icpml.config import config_from_dict
    from icpml.errors import ConfigError

    with pytest.raises(ConfigError, match="tracking.fit_model_name"):
        config_from_dict(_cfg(name="a", tracking={"fit_model_name": "a/b"}))


def test_a_second_config_in_one_process_uses_its_own_store(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ; icpml must not take
    that for the user's override: two configs in one process (a notebook, products) each log
    into their own store."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    a, b = demo_config(project_root=tmp_path / "a"), demo_config(project_root=tmp_path / "b")
    configure(a)
    assert "MLFLOW_TRACKING_URI" not in os.environ
    configure(b)
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'b' / 'mlruns' / 'mlflow.db'}"
    assert (tmp_path / "b" / "mlruns" / "mlflow.db").is_file()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'user.db'}")
    configure(a)  # the user's own override still wins, and stays set
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'user.db'}"
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'user.db'}"


def test_preflight_leaves_a_new_store_to_the_recording(tmp_path, monkeypatch):
    """A discovery's preflight creates no new local store (a run failing on its data must
    leave nothing behind), but refuses one that could not be created, in one line."""
    from icpml.run import preflight

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}")
    preflight(demo_config(project_root=tmp_path), track=True, report=False)
    assert not (tmp_path / "new").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/sub/mlflow.db")
    with pytest.raises(TrackingError, match="is not a folder") as err:
        preflight(demo_config(project_root=tmp_path), track=True, report=False)
    assert f"'{blocker}'" in str(err.value) and "\n" not in str(err.value)


def test_browse_hint_runs_this_environments_mlflow(monkeypatch):
    """The 'browse:' line works from a shell where the environment is not activated."""
    import shutil
    import sys
    from pathlib import Path

    from icpml.cli import _mlflow_command

    here = Path(sys.executable).parent / "mlflow"
    monkeypatch.setattr(shutil, "which", lambda name: str(here))
    assert _mlflow_command() == "mlflow"
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert _mlflow_command() == str(here)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/local/bin/mlflow")
    assert _mlflow_command() == str(here)  # another mlflow may read another schema
