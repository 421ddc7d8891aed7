"""Same data + config + seed => byte-identical criteria.json and scores, across processes;
output paths from config cannot leave the project unless written as absolute paths."""

from __future__ import annotations

import subprocess
import sys

import pytest

from icpml.config import config_from_dict, demo_config
from icpml.errors import ConfigError

CHILD = """
import hashlib, sys
from icpml import demo_config, discover, make_accounts
res = discover(demo_config(), make_accounts(1500, seed=4))
crit = res.criteria.to_json().encode()
scores = res.scored.to_csv(index=False).encode()
print(hashlib.sha256(crit).hexdigest(), hashlib.sha256(scores).hexdigest(), len(res.criteria.icp))
"""


def test_same_inputs_same_bytes_across_processes(tmp_path):
    env_sets = [{"PYTHONHASHSEED": "1"}, {"PYTHONHASHSEED": "2"}]  # set/dict order must not leak
    outs = []
    for extra in env_sets:
        import os

        env = {**os.environ, **extra, "ICPML_PROJECT_ROOT": str(tmp_path), "MPLBACKEND": "Agg"}
        r = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout.split())
    assert outs[0] == outs[1]
    assert int(outs[0][2]) >= 2  # a real ICP was compared, not an empty one


@pytest.mark.parametrize("folder", ["../elsewhere", "reports/../../x"])
def test_report_dir_cannot_escape_the_project(folder):
    base = demo_config().model_dump(exclude={"project_root"})
    with pytest.raises(ConfigError, match="leaves the project"):
        config_from_dict({**base, "report": {"dir": folder}})


def test_absolute_report_dir_is_allowed(tmp_path):
    base = demo_config().model_dump(exclude={"project_root"})
    cfg = config_from_dict({**base, "report": {"dir": str(tmp_path / "out")}})
    assert cfg.resolve(cfg.report.dir) == tmp_path / "out"
