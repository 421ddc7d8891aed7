"""Three-condition ICPs at a few thousand customers: every planted condition comes back.

Each seed draws its own planted ICP with exactly three conditions (the generator of
:mod:`test_conjunctions`: numeric bands or one-sided cuts and category sets over random
columns, plus a noise numeric and a noise category), at 2,400 customers and a moderate
effect (the value behind the outcomes is ``1.5 * [ICP] + 0.2 * (conditions met) +
N(0, 1)``, a planted best-cohort lift of about 2.5). Such a draw once came back with one
or two conditions, or with no ICP at all: the third condition, tested inside the few
hundred accounts meeting the other two, did not pass on a 17% selection split and a 30%
held-out split. Tolerances: membership F1 >= 0.8 on 4,000 fresh accounts, every planted
column in the ICP and no other column there (no non-causal conjunct). The seeds are
the first three from 100 whose draw has three conditions (development seeds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from icpml import discover
from icpml.data import validate_accounts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_conjunctions import Plant, _config, _f1, _plant, _sample  # noqa: E402

N, EFFECT = 2400, 1.5


def _three_condition_seeds(count: int = 3, start: int = 100) -> list[int]:
    out, s = [], start
    while len(out) < count:
        p = _plant(s)
        if len(p.bands) + len(p.sets) == 3:
            out.append(s)
        s += 1
    return out


SEEDS = _three_condition_seeds()


def _columns(plant: Plant) -> set[str]:
    return set(plant.bands) | set(plant.sets)


@pytest.mark.parametrize("seed", SEEDS)  # 103 failed until the pair search grew category sets
def test_three_condition_icp_recovered_at_2400(seed):
    plant = _plant(seed)
    df, _ = _sample(plant, N, seed, effect=EFFECT)
    cfg = _config()
    cs = discover(cfg, df).criteria
    fresh, truth = _sample(plant, 4000, 10_000 + seed, effect=EFFECT)
    fresh = validate_accounts(fresh, cfg)
    pred = np.asarray(cs.icp_mask(fresh), dtype=bool)
    got = [c.describe() for c in cs.icp]
    used = {col for c in cs.icp for col in c.columns}
    assert used == _columns(plant), (seed, plant, got)
    assert _f1(pred, truth) >= 0.8, (seed, plant, got, _f1(pred, truth))
    assert cs.verdict["icp_found"]


def test_seeds_draw_three_conditions_of_both_kinds():
    plants = [_plant(s) for s in SEEDS]
    assert all(len(_columns(p)) == 3 for p in plants)
    assert any(p.bands for p in plants) and any(p.sets for p in plants)
