"""The given-the-others confirmation p of an ICP conjunct, and cross-fitted consistency."""

from __future__ import annotations

from icpml.criteria.confirm import _icp_p
from icpml.criteria.rule import Criterion


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
