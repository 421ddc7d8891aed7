"""Config: strict keys, role checks, YAML errors, paths from the project root."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from icpml.config import find_project_root, load_config
from icpml.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())


def _write(tmp_path, data) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_demo_config_loads_and_package_copy_matches(monkeypatch):
    monkeypatch.delenv("ICPML_PROJECT_ROOT", raising=False)
    assert (REPO / "configs" / "demo.yaml").read_text() == \
        (REPO / "src" / "icpml" / "configs" / "demo.yaml").read_text()
    cfg = load_config(REPO / "configs" / "demo.yaml")
    assert cfg.cohorts.best_quantile == 0.25 and cfg.columns.churn == "churned"
    assert cfg.project_root == REPO


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.update(extra=1), "extra: unknown key"),
    (lambda d: d["columns"].update(idd="x"), "columns.idd: unknown key"),
    (lambda d: d["columns"].pop("id"), "columns.id: required key is missing"),
    (lambda d: d["columns"]["features"].update(magic=["x"]), "unknown feature group 'magic'"),
    (lambda d: d["columns"]["features"]["firmographic"].append("arr"), "column 'arr' is given two roles"),
    (lambda d: d["columns"]["features"]["firmographic"].append("churned"), "churn column 'churned'"),
    (lambda d: d["cohorts"].update(best_quantile=0.7), "cohorts.best_quantile"),
    (lambda d: d["columns"]["outcomes"][0].update(weight=0), "weight"),
    (lambda d: d["columns"].update(outcomes=[]), "columns.outcomes"),
    (lambda d: d["models"].update(seed="abc") if "models" in d else d.update(models={"seed": "abc"}), "models.seed"),
])
def test_bad_configs_name_the_key(tmp_path, edit, needle):
    import copy

    d = copy.deepcopy(DEMO)
    edit(d)
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")):
        load_config(_write(tmp_path, d))


def test_yaml_syntax_error_gives_line(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML at line 2"):
        load_config(_write(tmp_path, "name: x\n\tcolumns: 1\n"))


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        load_config(_write(tmp_path, ""))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_paths_resolve_from_project_root_not_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("ICPML_PROJECT_ROOT", raising=False)
    proj = tmp_path / "proj"
    (proj / "configs").mkdir(parents=True)
    (proj / "pyproject.toml").write_text("")
    p = proj / "configs" / "c.yaml"
    p.write_text(yaml.safe_dump(DEMO))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(p)
    assert cfg.resolve("data/x.csv") == proj / "data" / "x.csv"
    assert find_project_root(proj / "configs") == proj
    monkeypatch.setenv("ICPML_PROJECT_ROOT", str(tmp_path))
    assert find_project_root(proj) == tmp_path


def test_to_dict_round_trip():
    from icpml.config import config_from_dict

    cfg = load_config(REPO / "configs" / "demo.yaml")
    d = cfg.to_dict()
    d.pop("project_root")
    assert config_from_dict(d, project_root=cfg.project_root) == cfg


#: pydantic's own wording; none of it may reach a user
PYDANTIC_WORDS = ("Input should", "Value error", "valid dictionary", "valid list", "type=",
                  "For further information", "pydantic", "instance of")


@pytest.mark.parametrize(("edit", "needles"), [
    # a flat list where features are grouped: the hint shows the expected shape
    (lambda d: d["columns"].update(features=["industry", "employees"]),
     ["columns.features:", "features are grouped", "firmographic: [industry, employees]"]),
    (lambda d: d["columns"]["features"].update(firmographic="industry"),
     ["columns.features.firmographic:", "expected a list", "[industry]"]),
    (lambda d: d.update(cohorts=[0.25]), ["cohorts:", "expected a mapping"]),
    (lambda d: d["columns"].update(outcomes=["arr"]),
     ["columns.outcomes.0:", "{column: arr, direction: higher}"]),
    (lambda d: d["columns"]["outcomes"][0].update(direction="up"),
     ["columns.outcomes.0.direction:", "'up' is not allowed", "'higher' or 'lower'"]),
    (lambda d: d.update(models={"seed": "abc"}), ["models.seed:", "whole number", "'abc'"]),
    (lambda d: d.update(models={"holdout_size": 0.9}), ["models.holdout_size:", "less than 0.6"]),
    (lambda d: d.update(models={"churn_uses_post_sale": "maybe"}), ["true or false"]),
    (lambda d: d.update(data={"path": "x", "options": {"a": 1}}),
     ["data:", "data.options only apply to a data.adapter"]),
    (lambda d: d.update(cohort={}), ["cohort: unknown key", "did you mean 'cohorts'?"]),
    (lambda d: d["tracking"].update(experimnt="x"), ["tracking.experimnt:", "'experiment'"]),
])
def test_config_errors_are_plain_words(tmp_path, edit, needles):
    import copy

    d = copy.deepcopy(DEMO)
    edit(d)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, d))
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, msg
    for word in PYDANTIC_WORDS:
        assert word not in msg, msg
    assert len(msg.splitlines()) == 1 and msg.startswith(str(tmp_path / "c.yaml") + ": ")


def test_several_problems_give_one_clause_each_on_one_line(tmp_path):
    import copy

    d = copy.deepcopy(DEMO)
    d["columns"]["features"] = ["industry"]
    d["models"] = {"seed": "abc", "cv_folds": 1}
    d["extra"] = 1
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, d))
    msg = str(info.value)
    assert len(msg.splitlines()) == 1
    for clause in ("columns.features: got a list, but features are grouped",
                   "models.seed: expected a whole number, got text 'abc'",
                   "models.cv_folds: must be at least 2, got 1",
                   "extra: unknown key; remove it or check its spelling"):
        assert clause in msg, msg
    assert not any(w in str(info.value) for w in PYDANTIC_WORDS)
