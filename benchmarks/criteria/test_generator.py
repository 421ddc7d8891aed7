"""Checks of the procedural generator (no icpml discovery; seconds).

Run explicitly (``tests/`` is the default test path)::

    PYTHONPATH=src .venv/bin/python -m pytest benchmarks/criteria/test_generator.py -q

Development seeds only (0-999): the reporting seeds are never looked at while developing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generator import FAMILIES, SIGNAL_FAMILIES, draw_spec, sample, spec_summary  # noqa: E402
from procedural import make_plan  # noqa: E402


@pytest.mark.parametrize("family", list(FAMILIES))
def test_same_seed_same_draw(family):
    a, b = draw_spec(family, 7), draw_spec(family, 7)
    assert spec_summary(a) == spec_summary(b)
    sa, sb = sample(a, 300), sample(b, 300)
    for k in sa.accounts:
        assert sa.accounts[k].equals(sb.accounts[k])
        assert np.array_equal(sa.truth_icp[k], sb.truth_icp[k])


def test_families_draw_their_own_truth():
    plants = {f: spec_summary(draw_spec(f, 3))["plants"] for f in SIGNAL_FAMILIES}
    icps = [p["icp"] for fam in plants.values() for p in fam.values()]
    assert len(set(icps)) == len(icps)


@pytest.mark.parametrize("seed", range(6))
def test_planted_segment_in_bounds(seed):
    spec = draw_spec("conjunctive", seed)
    plant = spec.plants[""]
    assert 1 <= len(plant.icp) <= 4 and 1 <= len(plant.anti) <= 2
    s = sample(spec, 20_000, "fresh")
    assert 0.03 <= s.truth_icp[""].mean() <= 0.36


@pytest.mark.parametrize("seed", range(3))
def test_interaction_parts_are_flat_alone(seed):
    lifts = draw_spec("interaction", seed).info["marginal_lift_pilot"]
    assert len(lifts) == 2
    assert all(0.9 <= v <= 1.1 for v in lifts.values()), lifts


def test_leak_columns_are_features_and_messy_truth_uses_clean_values():
    leak = draw_spec("leak", 2)
    assert leak.leaks and set(leak.leaks.values()) <= set(leak.feature_columns)
    messy = draw_spec("messy", 1)
    s = sample(messy, 3000)
    df = s.accounts[""]
    assert messy.id_feature[0] in df.columns and df[messy.id_feature[0]].is_unique
    assert any(df[c].isna().any() for c in messy.missing)
    observed = messy.plants[""].icp_mask(df, observed=True)
    assert observed.sum() <= s.truth_icp[""].sum()  # blanks never match


def test_codes_and_small_and_null():
    codes = draw_spec("codes", 4)
    code_cols = {c.name for c in codes.columns if c.kind == "code"}
    assert code_cols & {c.column for c in codes.plants[""].icp}
    small = draw_spec("small", 4)
    assert 200 <= small.n <= 500 and small.info["planted_lift_pilot"]["icp"] >= 2
    null = draw_spec("null", 4)
    assert not null.plants and not sample(null, 200).truth_icp[""].any()


def test_dev_and_report_seeds_are_disjoint():
    dev = {s for _, s in make_plan(dev=True, quick=False)}
    report = {s for _, s in make_plan(dev=False, quick=False)}
    assert max(dev) < 1000 <= min(report)
    assert sum(f != "null" for f, _ in make_plan(dev=False, quick=False)) >= 40
    assert sum(f == "null" for f, _ in make_plan(dev=False, quick=False)) >= 20
