"""Every notebook runs top to bottom, shows its figures, prints nothing on stderr, and
shares one cached discovery; notebook 04 also runs with only CONFIG set to a user's config.
Committed notebooks carry no outputs."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SHARED_DATA = Path(os.environ.get("ICPML_REAL_DATA", REPO.parent / "shared" / "data"))
TELCO = SHARED_DATA / "ibm_telco_churn" / "Telco-Customer-Churn.csv"

#: a code cell that calls one of these draws a figure and must show it as an image
PLOT_CALL = re.compile(r"\b(shap_summary|cohort_contrast_plot|dependence_plot|calibration_plot|"
                       r"gains_plot|tier_plot)\(")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One discovery cache for every notebook of the module (as in a user's project)."""
    return tmp_path_factory.mktemp("icpml-cache")


def _run(path: Path, workdir: Path, cache: Path, monkeypatch, config: Path | None = None):
    """Execute a notebook (optionally with CONFIG set) and return its cells with outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    if config is not None:  # what a user does: set CONFIG in the first cell, nothing else
        src = nb.cells[first].source
        assert "CONFIG = None" in src
        nb.cells[first].source = src.replace("CONFIG = None", f"CONFIG = {str(config)!r}")
    # after the set-up cell (which defines cfg): 2 stability resamples instead of 8, so the
    # suite stays fast; every cell of the notebook itself runs unchanged
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(
        'cfg = cfg.model_copy(update={"criteria": cfg.criteria.model_copy('
        'update={"stability_resamples": 2})})'))
    monkeypatch.setenv("ICPML_CACHE_DIR", str(cache))  # the kernel inherits the environment
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(workdir))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return [c for c in nb.cells if c.cell_type == "code"]


def _check(cells) -> None:
    outputs = [(c, o) for c in cells for o in c.get("outputs", [])]
    errors = [o for _, o in outputs if o.get("output_type") == "error"]
    assert not errors, [f"{e['ename']}: {e['evalue']}" for e in errors]
    stderr = [o["text"] for _, o in outputs if o.get("output_type") == "stream"
              and o.get("name") == "stderr"]
    assert not stderr, stderr  # no red warnings (TqdmWarning, logging) under any cell
    plots = [c for c in cells if PLOT_CALL.search(c.source)]
    assert plots
    for c in plots:  # an image, not the bare "<Figure size 700x400 with 1 Axes>" text
        images = [o for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"plot cell shows no image:\n{c.source}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_shows_every_figure(path, tmp_path, shared_cache, monkeypatch):
    cells = _run(path, tmp_path, shared_cache, monkeypatch)
    _check(cells)
    # 02, 03 and 04 discover the same data with the same config: one cache entry, computed once
    assert len(list(shared_cache.glob("discoveries/*.pkl"))) <= 1


def _user_project(tmp_path: Path, accounts: Path, cfg: dict) -> Path:
    """A user's project folder: their data file and their config pointing at it."""
    (tmp_path / ".icpml").touch()
    shutil.copyfile(accounts, tmp_path / "accounts.csv")
    cfg["data"] = {"path": str(tmp_path / "accounts.csv")}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def users_config(tmp_path_factory) -> Path:
    """A user's own table and config: upper-case outcomes (ARR, NPS), a name column, the
    numeric features first; nothing named as in the demo."""
    from icpml.synthetic import make_accounts

    root = tmp_path_factory.mktemp("user")
    acc = make_accounts(1200, seed=4).rename(columns={
        "arr": "ARR", "nrr": "NRR", "nps": "NPS", "churned": "Churned", "company_name": "Company"})
    demo = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    features = {"intent": demo["columns"]["features"]["intent"],
                **{g: f for g, f in demo["columns"]["features"].items() if g != "intent"}}
    cfg = {"name": "mine", "columns": {**demo["columns"], "name": "Company", "churn": "Churned",
                                       "features": features,
                                       "outcomes": [{"column": "ARR"}, {"column": "NRR"},
                                                    {"column": "NPS", "weight": 0.5}]}}
    acc.to_csv(root / "mine.csv", index=False)
    return _user_project(root, root / "mine.csv", cfg)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_with_only_config_set_to_a_users_own_columns(path, users_config, monkeypatch):
    cells = _run(path, users_config.parent, users_config.parent / "cache", monkeypatch,
                 config=users_config)
    _check(cells)
    if path.stem.startswith("04"):
        shown = cells[-2]["outputs"][0]["data"]["text/plain"]  # the top-10 table
        assert "Company" in shown and "ARR" not in shown


@pytest.mark.slow
@pytest.mark.skipif(not TELCO.is_file(), reason=f"public data not found at {SHARED_DATA}")
def test_notebook_04_with_only_config_set_to_telco(tmp_path, monkeypatch):
    cfg = yaml.safe_load((REPO / "configs" / "telco.yaml").read_text())
    config = _user_project(tmp_path, TELCO, cfg)
    path = next(p for p in NOTEBOOKS if p.stem.startswith("04"))
    cells = _run(path, tmp_path, tmp_path / "cache", monkeypatch, config=config)
    _check(cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_there_are_four_numbered_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]
