"""`mlflow models serve` serves the registered champion; a request on localhost scores accounts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from icpml.synthetic import make_accounts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_champion_scores_over_http(demo_run, tmp_path):
    root, result = demo_run
    assert result.exit_code == 0, result.output
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    if not mlflow_bin.exists():
        mlflow_bin = shutil.which("mlflow")
    port = _free_port()
    store = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_REGISTRY_URI": store,
           # the server execs uvicorn by name: it must be on PATH (the venv's bin)
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", "models:/demo-fit@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:  # bounded wait for the server to come up
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        else:
            pytest.fail("server did not start: " + (tmp_path / "serve.log").read_text()[-2000:])
        rows = make_accounts(5, seed=3).drop(columns=["crm"])
        body = json.dumps({"dataframe_records": json.loads(rows.to_json(orient="records"))})
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            out = json.loads(r.read())
        preds = out["predictions"]
        assert len(preds) == 5
        assert {"fit_score", "tier", "icp_match", "top_reasons"} <= set(preds[0])
        assert all("crm" in p["data_issues"] for p in preds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
