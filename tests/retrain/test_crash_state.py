"""Crash consistency of the registry, in-process and fast (issue 15, part 3).

The store is real (SQLite), the runs and model versions are made directly with the
MLflow client (no training), so each state a kill can leave is built exactly:

* a promotion interrupted between the fit and the churn alias writes (SIGTERM or an
  error: rolled back in-process; kill -9: journal left, finished by the next run);
* split champions left without a journal (older icpml), an unfinished run as champion;
* the idempotency check refusing an incomplete champion;
* RUNNING runs whose process is gone (kill -9): FAILED, versions removed, reports flagged,
  temporary report folders removed;
* concurrent first runs creating the store.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icpml import tracking
from icpml.config import load_config

FIT, CHURN = "demo-fit", "demo-churn"


@pytest.fixture()
def store(tmp_path, monkeypatch, prod_factory):
    root = prod_factory(tmp_path / "prod", n=60, experiment="crash-state", criteria={})
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(root))
    monkeypatch.setattr(tracking, "_note", None)
    cfg = load_config(root / "prod.yaml")
    exp_id = tracking.configure(cfg)
    from mlflow import MlflowClient

    return cfg, MlflowClient(), exp_id


def _run(client, exp_id, *, status="FINISHED", pid=None, names=(FIT, CHURN), decision=True):
    """A run with one version of each model in ``names``; returns (run_id, {name: version})."""
    tags = {"icpml.config_name": "demo"}
    if pid is not None:
        tags.update({"icpml.pid": str(pid), "icpml.host": socket.gethostname()})
    run_id = client.create_run(exp_id, tags=tags).info.run_id
    versions = {}
    for name in names:
        try:
            client.create_registered_model(name)
        except Exception:
            pass
        mv = client.create_model_version(name, source=f"file:///tmp/{run_id}/{name}", run_id=run_id)
        versions[name] = str(mv.version)
    if status == "FINISHED":
        client.set_tag(run_id, "icpml.fit_model_version", versions.get(FIT, ""))
        if decision:
            client.set_tag(run_id, "icpml.decision", "promoted")
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id, versions


def _champions(client) -> dict[str, str | None]:
    out = {}
    for name in (FIT, CHURN):
        try:
            mv = client.get_model_version_by_alias(name, "champion")
            out[name] = (str(mv.version), mv.run_id)
        except Exception:
            out[name] = None
    return out


def _promoted_pair(client, exp_id):
    """Champion run A (v1, v1), then a finished challenger run B (v2, v2)."""
    a, va = _run(client, exp_id)
    for n, v in va.items():
        client.set_registered_model_alias(n, "champion", v)
    b, vb = _run(client, exp_id, decision=False)
    return a, b, vb


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class Killed(BaseException):
    """kill -9: nothing after it runs (no handler, no rollback)."""


def _promote_interrupted(cfg, run_id, versions, monkeypatch, signal: type[BaseException]):
    """Promote ``run_id``, interrupted by ``signal`` right after the first alias write."""
    real = tracking.set_alias

    def set_alias(name, alias, version):
        real(name, alias, version)
        raise signal

    monkeypatch.setattr(tracking, "set_alias", set_alias)
    if signal is Killed:
        monkeypatch.setattr(tracking, "_roll_back", lambda *a, **k: None)
    with pytest.raises(signal):
        tracking.promote(cfg, run_id, versions, record={
            "version": "2", "decision": "promoted", "reasons": ["gate passed"], "time": "t"})


def test_interrupted_promotion_is_rolled_back_and_said(store, monkeypatch):
    cfg, client, exp_id = store
    a, b, vb = _promoted_pair(client, exp_id)
    _promote_interrupted(cfg, b, vb, monkeypatch, KeyboardInterrupt)  # SIGTERM / Ctrl-C
    assert _champions(client) == {FIT: ("1", a), CHURN: ("1", a)}  # both back on run A
    tags = client.get_run(b).data.tags
    assert tags["icpml.decision"] == "interrupted"
    assert json.loads(tags["icpml.promotion"])["decision"] == "interrupted"
    assert tracking.JOURNAL_TAG not in client.get_registered_model(FIT).tags
    note = tracking.interruption_note()
    assert "rolled back" in note and "demo-fit@champion=1" in note
    assert "nothing was half-written" not in note
    assert tracking.repair_promotions(cfg) == []  # nothing left to repair


def test_kill9_mid_promotion_is_completed_by_the_next_run(store, monkeypatch):
    cfg, client, exp_id = store
    a, b, vb = _promoted_pair(client, exp_id)
    _promote_interrupted(cfg, b, vb, monkeypatch, Killed)
    assert _champions(client) == {FIT: ("2", b), CHURN: ("1", a)}  # the split a kill leaves
    champ = tracking.champion(cfg)
    assert any("demo-churn@champion is 1" in p for p in tracking.champion_problems(cfg, champ))
    monkeypatch.undo()

    msgs = tracking.repair_promotions(cfg)
    assert len(msgs) == 1 and "completed" in msgs[0]
    assert _champions(client) == {FIT: ("2", b), CHURN: ("2", b)}
    tags = client.get_run(b).data.tags
    assert tags["icpml.decision"] == "promoted"
    assert json.loads(tags["icpml.promotion"])["version"] == "2"
    assert tracking.JOURNAL_TAG not in client.get_registered_model(FIT).tags
    assert tracking.champion_problems(cfg, tracking.champion(cfg)) == []


def test_pending_promotion_of_an_unfinished_run_is_rolled_back(store):
    cfg, client, exp_id = store
    a, _, _ = _promoted_pair(client, exp_id)
    c, vc = _run(client, exp_id, status="RUNNING")
    plan = {"state": "pending", "run_id": c, "targets": vc, "previous": {FIT: "1", CHURN: "1"},
            "record": None}
    client.set_registered_model_tag(FIT, tracking.JOURNAL_TAG, json.dumps(plan))
    client.set_registered_model_alias(FIT, "champion", vc[FIT])
    msgs = tracking.repair_promotions(cfg)
    assert any("rolled it back" in m for m in msgs)
    assert _champions(client) == {FIT: ("1", a), CHURN: ("1", a)}


def test_split_left_by_an_older_icpml_is_reunited_and_recorded(store):
    cfg, client, exp_id = store
    a, b, vb = _promoted_pair(client, exp_id)
    client.set_registered_model_alias(FIT, "champion", vb[FIT])  # no journal, no decision tag
    msgs = tracking.repair_promotions(cfg)
    assert len(msgs) == 1 and "different runs" in msgs[0]
    assert _champions(client) == {FIT: ("2", b), CHURN: ("2", b)}
    tags = client.get_run(b).data.tags
    assert tags["icpml.decision"] == "promoted"
    assert json.loads(tags["icpml.promotion"])["previous_champion"] == "1"


def test_unfinished_run_as_champion_is_removed_not_trusted(store):
    cfg, client, exp_id = store
    c, vc = _run(client, exp_id, status="RUNNING", names=(FIT,))  # killed as churn registered
    client.set_registered_model_alias(FIT, "champion", vc[FIT])
    problems = tracking.champion_problems(cfg, tracking.champion(cfg))
    assert any("RUNNING" in p for p in problems) and any("decision" in p for p in problems)
    msgs = tracking.repair_promotions(cfg)
    assert len(msgs) == 1 and "removed the alias" in msgs[0]
    assert tracking.champion(cfg) is None


def test_complete_champion_has_no_problems_and_a_missing_decision_is_recorded(store):
    cfg, client, exp_id = store
    a, va = _run(client, exp_id, decision=False)
    for n, v in va.items():
        client.set_registered_model_alias(n, "champion", v)
    assert tracking.champion_problems(cfg, tracking.champion(cfg)) == [
        "no promotion decision is on record"]
    assert "no promotion decision" in tracking.repair_promotions(cfg)[0]
    assert tracking.champion_problems(cfg, tracking.champion(cfg)) == []


def test_orphan_runs_are_failed_and_their_leftovers_cleaned(store):
    cfg, client, exp_id = store
    reports = cfg.resolve(cfg.report.dir)
    dead, live = _dead_pid(), os.getpid()
    orphan, vo = _run(client, exp_id, status="RUNNING", pid=dead)
    alive, _ = _run(client, exp_id, status="RUNNING", pid=live, names=())
    (reports / f"demo_{orphan[:8]}").mkdir(parents=True)
    (reports / f"demo_{orphan[:8]}" / "report.html").write_text("<html><body><h1>ICP</h1></body></html>")
    old = time.time() - 3600
    leftovers = {
        f".demo_{orphan[:8]}.x1y2z3": True,      # half-built report of the killed run
        f".demo_{alive[:8]}.a1b2c3": False,      # a live run is writing it
        ".demo_local.q9w8e7": True,              # untracked, an hour old
        ".index.md.k2j3h4.tmp": True,            # an atomic write cut short, an hour old
    }
    for name, _ in leftovers.items():
        p = reports / name
        p.mkdir() if not name.endswith(".tmp") else p.write_text("x")
        os.utime(p, (old, old))
    recent = reports / ".demo_local.n0w000"
    recent.mkdir()  # someone may be writing it right now

    msgs = tracking.sweep_orphans(cfg)

    run = client.get_run(orphan)
    assert run.info.status == "FAILED" and str(dead) in run.data.tags["icpml.orphaned"]
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.search_model_versions(f"run_id='{orphan}'") == []
    flagged = reports / f"demo_{orphan[:8]}-unfinished"
    assert not (reports / f"demo_{orphan[:8]}").exists() and flagged.is_dir()
    assert "UNFINISHED" in (flagged / "UNFINISHED.txt").read_text()
    assert "UNFINISHED: run" in (flagged / "report.html").read_text()
    for name, removed in leftovers.items():
        assert (reports / name).exists() is not removed, name
    assert recent.exists()
    assert any(orphan[:8] in m and "FAILED" in m for m in msgs)
    assert sum("removed the temporary" in m for m in msgs) == 3
    assert vo  # the version existed before the sweep
    assert tracking.sweep_orphans(cfg) == []  # idempotent


def test_concurrent_first_runs_create_the_store_once(tmp_path):
    """Four processes open a fresh SQLite store at once: all succeed (without the store lock,
    three of four failed with alembic migration errors on this machine)."""
    (tmp_path / "pyproject.toml").write_text("")
    code = ("from icpml import tracking, demo_config\n"
            "tracking.configure(demo_config())\nprint('ok')\n")
    env = {**os.environ, "ICPML_PROJECT_ROOT": str(tmp_path),
           "PYTHONPATH": str(Path(tracking.__file__).resolve().parents[1])}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-500:] for o in outs]
    assert all(o[0].strip() == "ok" for o in outs)
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()


def test_cli_says_what_an_interruption_left(monkeypatch):
    from icpml.cli import _interrupted_state

    monkeypatch.setattr(tracking, "_note", None)
    assert _interrupted_state() == "nothing was half-written; the champion is unchanged"
    monkeypatch.setattr(tracking, "_note", "the promotion of run abcd1234 was rolled back; "
                        "demo-fit@champion=1, demo-churn@champion=1 as before")
    assert "rolled back" in _interrupted_state()
    assert "nothing was half-written" not in _interrupted_state()
