"""Crash consistency through the real CLI: processes killed (kill -9, SIGTERM) at the worst moment.

Cases from ``../shared/cases`` (split-champion-on-kill, kill9-orphans,
fresh-store-concurrent-discover) and the same kinds on generated data. Each test runs
several ``icpml`` processes, so all are marked slow (``pytest -m slow``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _shared import CASES
from icpml.synthetic import make_accounts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
KILLAT = Path(__file__).resolve().parent / "_killat.py"


def _case(name: str, dest: Path) -> Path:
    src = CASES / name
    if not src.is_dir():
        pytest.skip(f"case folder {src} is absent")
    shutil.copytree(src, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    return dest


def _env(root: Path) -> dict:
    env = {**os.environ, "ICPML_PROJECT_ROOT": str(root), "MPLBACKEND": "Agg",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _icpml(root: Path, *args: str, killat: str | None = None, script: Path = KILLAT,
           sig: str = "SIGKILL") -> subprocess.CompletedProcess:
    cmd = ([sys.executable, str(script), killat] if killat else [sys.executable, "-m", "icpml"])
    env = {**_env(root), "KILLSIG": sig}
    return subprocess.run([*cmd, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)


def _client(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _champions(root: Path) -> dict:
    client = _client(root)
    out = {}
    for name in ("demo-fit", "demo-churn"):
        mv = client.get_model_version_by_alias(name, "champion")
        out[name] = (str(mv.version), mv.run_id)
    return out


def _runs(root: Path) -> dict[str, str]:
    client = _client(root)
    exps = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id: r.info.status for r in client.search_runs(exps)}


def _history(root: Path) -> list[dict]:
    return json.loads((root / "reports" / "promotions.json").read_text())


def _generated(root: Path, *, n: int = 700, seed: int = 3) -> Path:
    """A project on generated accounts: the demo config with a gate loose enough to promote."""
    root.mkdir()
    (root / ".icpml").write_text("")
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["data"]["path"] = "accounts.csv"
    cfg["tracking"]["experiment"] = "crash-generated"
    cfg["models"] = {"max_iter": 30, "cv_folds": 2, "min_samples_leaf": 5}
    cfg["criteria"] = {"n_bootstrap": 50, "stability_resamples": 0}
    cfg["retrain"] = {"max_auc_drop": 0.5, "max_lift_drop": 50}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    make_accounts(n, seed=seed).to_csv(root / "accounts.csv", index=False)
    return root


# ----------------------------------------------------------------------------- split champion
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_case_split_champion_on_kill_is_repaired(tmp_path, sig):
    root = _case("split-champion-on-kill", tmp_path / "case")
    assert _icpml(root, "discover", "-c", "cfg.yaml").returncode == 0
    killed = _icpml(root, "retrain", "-c", "cfg.yaml", "--data", "fresh.csv",
                    killat="after-fit-champion", script=root / "killat.py", sig=sig)
    assert killed.returncode == (137 if sig == "SIGKILL" else 143) or killed.returncode == -9
    assert "nothing was half-written" not in killed.stderr
    if sig == "SIGTERM":  # rolled back in-process, and said so
        assert "rolled back" in killed.stderr and "Traceback" not in killed.stderr
        champ = _champions(root)
        assert champ["demo-fit"] == champ["demo-churn"] and champ["demo-fit"][0] == "1"
        (new_run,) = [r for r in _runs(root) if r != champ["demo-fit"][1]]
        assert _client(root).get_run(new_run).data.tags["icpml.decision"] == "interrupted"

    nxt = _icpml(root, "retrain", "-c", "cfg.yaml", "--data", "fresh.csv")
    assert nxt.returncode == 0, nxt.stderr[-2000:]
    champ = _champions(root)
    assert champ["demo-fit"][1] == champ["demo-churn"][1]          # one run, both models
    assert champ["demo-fit"][0] == champ["demo-churn"][0] != "1"
    run = _client(root).get_run(champ["demo-fit"][1])
    assert run.info.status == "FINISHED" and run.data.tags["icpml.decision"] == "promoted"
    history = _history(root)
    assert champ["demo-fit"][1] in {h["run_id"] for h in history}
    assert "Champion:** demo-fit version " + champ["demo-fit"][0] in (root / "reports" / "index.md").read_text()
    if sig == "SIGKILL":  # completed: the killed run's promotion is the champion, then unchanged
        assert "completed it" in nxt.stderr and "decision:  unchanged" in nxt.stdout
        assert [h["decision"] for h in history] == ["promoted", "promoted"]
    else:  # rolled back, recorded as interrupted; the next run promoted its own challenger
        assert [h["decision"] for h in history] == ["promoted", "interrupted", "promoted"]
        assert "decision:  promoted" in nxt.stdout
    again = _icpml(root, "retrain", "-c", "cfg.yaml", "--data", "fresh.csv")
    assert "decision:  unchanged" in again.stdout and "repaired" not in again.stderr


def test_case_unfinished_first_discovery_is_not_unchanged(tmp_path):
    root = _case("split-champion-on-kill", tmp_path / "case")
    killed = _icpml(root, "discover", "-c", "cfg.yaml", killat="during-churn-register",
                    script=root / "killat.py")
    assert killed.returncode in (137, -9)
    (orphan,) = _runs(root)
    assert _runs(root)[orphan] == "RUNNING"
    client = _client(root)
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):  # no champion while the run was unfinished
        client.get_model_version_by_alias("demo-fit", "champion")

    nxt = _icpml(root, "retrain", "-c", "cfg.yaml")
    assert nxt.returncode == 0, nxt.stderr[-2000:]
    assert "decision:  promoted" in nxt.stdout and "unchanged" not in nxt.stdout
    assert _runs(root)[orphan] == "FAILED"
    assert client.search_model_versions(f"run_id='{orphan}'") == []
    assert (root / "reports" / f"demo_{orphan[:8]}-unfinished" / "UNFINISHED.txt").is_file()
    champ = _champions(root)
    assert champ["demo-fit"][1] == champ["demo-churn"][1] != orphan


def test_generated_kill9_between_alias_writes_in_a_retrain_chain(tmp_path):
    root = _generated(tmp_path / "gen")
    assert _icpml(root, "retrain", "-c", "cfg.yaml").returncode == 0          # first champion
    make_accounts(700, seed=11).to_csv(root / "accounts.csv", index=False)
    killed = _icpml(root, "retrain", "-c", "cfg.yaml", killat="after-first-champion")
    assert killed.returncode in (137, -9)
    split = _champions(root)
    assert split["demo-fit"][1] != split["demo-churn"][1]                       # the kill's damage
    nxt = _icpml(root, "-q", "retrain", "-c", "cfg.yaml")
    assert nxt.returncode == 0 and "decision:  unchanged" in nxt.stdout, nxt.stderr[-2000:]
    champ = _champions(root)
    assert champ["demo-fit"] == (split["demo-fit"][0], split["demo-fit"][1])
    assert champ["demo-churn"][1] == champ["demo-fit"][1]
    history = _history(root)
    assert [h["decision"] for h in history] == ["promoted", "promoted"]
    assert history[-1]["run_id"] == champ["demo-fit"][1]


# ----------------------------------------------------------------------------- orphans
def test_kill9_orphans_case_retrain_killed_while_reporting(tmp_path):
    """kill9-orphans: the case's trial.sh kills a retrain after training; here, in report writing."""
    if not (CASES / "kill9-orphans").is_dir():
        pytest.skip("case folder kill9-orphans is absent")
    root = _generated(tmp_path / "gen", seed=13)
    assert _icpml(root, "retrain", "-c", "cfg.yaml").returncode == 0
    before = _champions(root)
    make_accounts(700, seed=14).to_csv(root / "accounts.csv", index=False)
    killed = _icpml(root, "retrain", "-c", "cfg.yaml", killat="during-report")
    assert killed.returncode in (137, -9)
    temps = [p.name for p in (root / "reports").iterdir() if p.name.startswith(".demo_")]
    assert temps, "the kill should leave a hidden half-built report folder"
    (orphan,) = [r for r, s in _runs(root).items() if s == "RUNNING"]

    nxt = _icpml(root, "retrain", "-c", "cfg.yaml")
    assert nxt.returncode == 0, nxt.stderr[-2000:]
    assert f"run {orphan[:8]}" in nxt.stderr and "marked FAILED" in nxt.stderr
    assert _runs(root)[orphan] == "FAILED"
    assert not any(p.name.startswith(".demo_") for p in (root / "reports").iterdir())
    assert "RUNNING" not in _runs(root).values()
    champ = _champions(root)
    assert champ["demo-fit"][1] == champ["demo-churn"][1] != before["demo-fit"][1]


def test_kill9_during_discover_then_discover_cleans_up(tmp_path):
    root = _generated(tmp_path / "gen", seed=21)
    killed = _icpml(root, "discover", "-c", "cfg.yaml", killat="during-report")
    assert killed.returncode in (137, -9)
    (orphan,) = _runs(root)
    assert any(p.name.startswith(f".demo_{orphan[:8]}.") for p in (root / "reports").iterdir())

    nxt = _icpml(root, "discover", "-c", "cfg.yaml")
    assert nxt.returncode == 0, nxt.stderr[-2000:]
    runs = _runs(root)
    assert runs[orphan] == "FAILED" and sorted(runs.values()) == ["FAILED", "FINISHED"]
    assert "icpml.orphaned" in _client(root).get_run(orphan).data.tags
    assert not any(p.name.startswith(".") for p in (root / "reports").iterdir())
    champ = _champions(root)
    assert champ["demo-fit"][1] == champ["demo-churn"][1] != orphan


def test_sigterm_during_discover_leaves_no_orphan(tmp_path):
    root = _generated(tmp_path / "gen", seed=22)
    proc = subprocess.Popen([sys.executable, "-m", "icpml", "discover", "-c", "cfg.yaml"], cwd=root,
                            env=_env(root), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    for line in proc.stderr:
        if "stage=stability" in line:
            proc.send_signal(signal.SIGTERM)
            break
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 143, err[-1500:]
    assert "RUNNING" not in _runs(root).values()
    assert not any(p.name.startswith(".") for p in (root / "reports").iterdir()) \
        if (root / "reports").is_dir() else True


# ----------------------------------------------------------------------------- concurrency
def _concurrent(root: Path, datas: list[str]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-m", "icpml", "discover", "-c", "cfg.yaml",
                               "--data", d], cwd=root, env=_env(root), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for d in datas]
    return [(p, *p.communicate(timeout=900)) for p in procs]


def _check_concurrent(root: Path, results) -> None:
    for p, _, err in results:
        assert p.returncode == 0, err[-2000:]
        assert "migration" not in err and "Traceback" not in err
    champ = _champions(root)
    assert champ["demo-fit"][1] == champ["demo-churn"][1]   # one run's models, both champion
    runs = _runs(root)
    assert list(runs.values()) == ["FINISHED"] * len(results)


def test_case_fresh_store_concurrent_discover(tmp_path):
    root = _case("fresh-store-concurrent-discover", tmp_path / "case")
    shutil.rmtree(root / "mlruns", ignore_errors=True)
    _check_concurrent(root, _concurrent(root, ["a1.csv", "a2.csv"]))


def test_generated_concurrent_first_discovers(tmp_path):
    root = _generated(tmp_path / "gen", n=500, seed=31)
    make_accounts(500, seed=32).to_csv(root / "b.csv", index=False)
    _check_concurrent(root, _concurrent(root, ["accounts.csv", "b.csv"]))
