"""Band edges that a handful of accounts cannot move, and the given-the-others confirmation p."""

from __future__ import annotations

import numpy as np
import pandas as pd

from icpml.criteria import fit_band
from icpml.criteria.confirm import _icp_p
from icpml.criteria.rule import Criterion


def _few_past_the_edge():
    """A planted band 150-600 in a 210-account segment (the other criteria met), five best
    accounts just past 600 (655-682): the counts of the demo's seed 2 at 3,000 accounts."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(50, 149, 42).round(), rng.uniform(150, 600, 137).round(),
                        [655, 655, 665, 672, 682], rng.uniform(713, 3000, 26).round()])
    best = np.concatenate([np.arange(42) < 23, np.arange(137) > 0, np.ones(5, bool),
                           np.arange(26) < 17])
    return pd.DataFrame({"employees": x}), best


def test_edge_not_moved_past_a_handful_of_accounts():
    rows, best = _few_past_the_edge()
    c = Criterion("icp", "employees", "between", low=150, high=616)
    got = fit_band(c, rows, best, np.ones(len(rows), dtype=bool), min_k=63)
    assert (got.op, got.low, got.high) == ("between", 150, 616)  # was 700: five accounts decided


def test_edge_moved_past_many_accounts():
    rows, best = _few_past_the_edge()
    c = Criterion("icp", "employees", "between", low=150, high=400)
    got = fit_band(c, rows, best, np.ones(len(rows), dtype=bool), min_k=63)
    assert got.low == 150 and 600 <= got.high <= 700


def test_conjunct_confirmed_given_the_others():
    assert _icp_p(0.2, 0.001, n_icp=3) == 0.001  # diluted alone, clear given the others
    assert _icp_p(0.001, 0.2, n_icp=3) == 0.2  # rides along with the others: not confirmed
    assert _icp_p(0.2, 0.001, n_icp=1) == 0.2  # a lone criterion is tested alone


def test_consistency_of_cross_fitted_criteria():
    from icpml.criteria.confirm import _confirm, _consistency

    icp = Criterion("icp", "region", "in", values=("North",))
    anti = Criterion("anti_icp", "region", "in", values=("South",))
    assert _consistency(icp, 3, 5) == 1.0
    assert _consistency(icp, 2, 5) == 0.1  # two folds of five: strongly significant only
    assert _consistency(anti, 2, 5) == 0.0 and _consistency(icp, 1, 5) == 0.0
    a, b = Criterion("icp", "a", "in", values=("x",)), Criterion("icp", "b", "in", values=("y",))
    ok = {a.key: 0.1, b.key: 0.1}
    confirmed, unconfirmed = _confirm([a, b], {a.key: 1e-5, b.key: 0.01}, 2, 0.05, ok)
    assert confirmed == [a] and unconfirmed == [b]  # q 2e-5 < 0.005; q 0.01 is not
