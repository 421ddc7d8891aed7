"""Criterion semantics, words and exports; evidence arithmetic; JSON determinism."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from icpml.criteria import CriteriaSet, Criterion, segment_evidence
from icpml.criteria.bands import _roundest


@pytest.fixture()
def df():
    return pd.DataFrame({
        "employees": [10.0, 150.0, 600.0, 601.0, np.nan],
        "industry": pd.array(["SaaS", "FinTech", None, "Media", "SaaS"], dtype="string"),
        "onprem": pd.array([True, False, None, False, True], dtype="boolean"),
    })


@pytest.mark.parametrize(("crit", "expected", "text"), [
    (Criterion("icp", "employees", "between", low=150, high=600), [0, 1, 1, 0, 0], "150 <= employees <= 600"),
    (Criterion("anti_icp", "employees", "<", high=50), [1, 0, 0, 0, 0], "employees < 50"),
    (Criterion("icp", "employees", ">=", low=600), [0, 0, 1, 1, 0], "employees >= 600"),
    (Criterion("icp", "employees", "is_missing"), [0, 0, 0, 0, 1], "employees is unknown"),
    (Criterion("icp", "industry", "in", values=("FinTech", "SaaS")), [1, 1, 0, 0, 1], "industry in {FinTech, SaaS}"),
    (Criterion("icp", "industry", "not_in", values=("SaaS",)), [0, 1, 0, 1, 0], "industry not in {SaaS}"),
    (Criterion("anti_icp", "industry", "in", values=("(missing)",)), [0, 0, 1, 0, 0], "industry is unknown"),
    (Criterion("anti_icp", "onprem", "in", values=("True",)), [1, 0, 0, 0, 1], "onprem = True"),
    (Criterion("anti_icp", "onprem", "in", values=("True",),
               also=(Criterion("anti_icp", "employees", "<", high=200),)),
     [1, 0, 0, 0, 0], "onprem = True and employees < 200"),
])
def test_mask_text_and_exports_agree(df, crit, expected, text):
    assert crit.mask(df).astype(int).tolist() == expected
    assert crit.describe() == text
    assert df.eval(crit.to_pandas(), engine="python").fillna(False).astype(int).tolist() == expected
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.register("t", df.assign(_i=range(len(df))))
    got = [r[0] for r in con.execute(f"SELECT _i FROM t WHERE {crit.to_sql()} ORDER BY _i").fetchall()]
    assert got == [i for i, v in enumerate(expected) if v]


def test_reasons_in_words():
    band = Criterion("icp", "employees", "between", low=150, high=600)
    assert band.reason(320) == "employees 320 is inside the 150-600 band"
    assert band.reason(700) == "employees 700 is outside the 150-600 band"
    assert Criterion("anti_icp", "onprem", "in", values=("True",)).reason(True) == "onprem is True"


def test_interaction_reasons_name_every_part():
    pair = Criterion("anti_icp", "onprem", "in", values=("True",),
                     also=(Criterion("anti_icp", "employees", "<", high=200),))
    assert pair.reason(True) == "onprem is True and employees < 200"
    assert pair.columns == ["onprem", "employees"]


def test_round_trip_and_byte_determinism():
    pair = Criterion("anti_icp", "onprem", "in", values=("True",), source="churn_model",
                     also=(Criterion("anti_icp", "employees", "<", high=200, source="churn_model"),))
    cs = CriteriaSet(icp=[Criterion("icp", "industry", "in", values=("SaaS",),
                                    evidence={"lift": 1.23456789, "ci": [np.nan, 2.0]})],
                     anti_icp=[Criterion("anti_icp", "employees", "<", high=50), pair],
                     verdict={"icp_found": True, "message": "x"})
    text = cs.to_json()
    again = CriteriaSet.from_dict(json.loads(text))
    assert again.to_json() == text
    assert again.anti_icp[1] == pair and again.anti_icp[1].also[0].source == "churn_model"
    assert cs.columns == ["employees", "industry", "onprem"]
    assert '"lift": 1.234568' in text and "NaN" not in text
    with pytest.raises(ValueError, match="schema"):
        CriteriaSet.from_dict({**json.loads(text), "schema_version": "9.0"})


@pytest.mark.parametrize(("lo", "hi", "upper", "expected"), [
    (599, 601, True, 600), (149, 150, False, 150), (41.27, 41.33, False, 41.3), (6.0, 7.0, True, 6),
])
def test_roundest_threshold_in_gap(lo, hi, upper, expected):
    got = _roundest(lo, hi, include_lo=upper, include_hi=not upper)
    assert got == pytest.approx(expected)
    assert (lo <= got < hi) if upper else (lo < got <= hi)


def test_segment_evidence_by_hand():
    m = pd.Series([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)
    best = pd.Series([1, 1, 1, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    churn = pd.Series([0, 0, 0, 1, 1, 1, 0, 0, 0, 1], dtype=bool)
    ev = segment_evidence(m, best, churn, n_bootstrap=200)
    assert ev["coverage"] == 0.4 and ev["best_rate"] == 0.75 and ev["base_rate"] == 0.4
    assert ev["lift"] == pytest.approx(1.875) and ev["wracc"] == pytest.approx(0.4 * 0.35)
    assert ev["churn_inside"] == 0.25 and ev["churn_outside"] == 0.5
    assert ev["best_wrongly_excluded"] == 0.75
    lo, hi = ev["lift_ci"]
    assert lo <= ev["lift"] <= hi


def test_detectable_lift_shrinks_with_data():
    from icpml.criteria import detectable_lift

    lifts = [detectable_lift(n, 0.25) for n in (20, 90, 900, 9000)]
    assert lifts == sorted(lifts, reverse=True) and lifts[-1] > 1.0
    assert 1.7 < lifts[1] < 2.0  # 90 held-out accounts: only large effects are visible
    assert np.isnan(detectable_lift(0, 0.25))


# ----------------------------------------------------------------------------- numeric codes
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(("values", "good"), [
    ((1, 2), {2}), ((1, 2), {1}), ((1, 2, 3), {2}), ((0, 1, 2, 3, 4), {3, 4}), ((1, 2, 3, 4, 5), {1}),
])
def test_numeric_code_gets_a_candidate_per_value(seed, values, good):
    """A 2-5 valued number yields a candidate selecting exactly the good values, whatever the split."""
    from icpml.criteria.propose import _numeric_candidates

    rng = np.random.default_rng(seed)
    n = 600
    p = rng.dirichlet(np.full(len(values), 2.0)) * 0.7 + 0.3 / len(values)  # no value below ~6%
    x = pd.Series(rng.choice(values, n, p=p / p.sum()).astype(float))
    is_good = x.isin(list(good)).to_numpy()
    s = pd.Series(np.where(is_good, 0.6, -0.3) + rng.normal(0, 0.05, n))
    cands = _numeric_candidates("Channel", x, s, 1, "numeric", "fit_model", min_count=18)
    frame = pd.DataFrame({"Channel": x})
    assert any((c.mask(frame).to_numpy() == is_good).all() for c in cands), [c.describe() for c in cands]
    anti = _numeric_candidates("Channel", x, s, -1, "numeric", "fit_model", min_count=18)
    bad = [v for v in values if v not in good]
    runs = [bad[:1]] if bad[:1] else []  # contiguous runs of bad values: one candidate each
    for v in bad[1:]:
        if values.index(v) == values.index(runs[-1][-1]) + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    for run in runs:
        want = x.isin(run).to_numpy()
        assert any((c.mask(frame).to_numpy() == want).all() for c in anti), [c.describe() for c in anti]


def test_two_valued_code_at_a_split_between_quantile_steps():
    """The 68/32 split of the Wholesale case: both values fell into one quantile bin."""
    from icpml.criteria.propose import _numeric_candidates

    x = pd.Series([1.0] * 136 + [2.0] * 64)
    s = pd.Series([-0.2] * 136 + [0.5] * 64)
    (c,) = [c for c in _numeric_candidates("Channel", x, s, 1, "numeric", "fit_model", 6)]
    assert c.describe() == "Channel = 2" and c.values == (2,)


# ----------------------------------------------------------------------------- stability
def test_resample_criteria_match_by_column_and_overlap():
    from icpml.stability import criteria_match

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"industry": rng.choice(["SaaS", "FinTech", "Media", "Retail"], 500),
                       "employees": np.exp(rng.normal(5.5, 1.0, 500)).round()})

    def match(a, b):
        return criteria_match(a, b, a.mask(df).to_numpy(bool), b.mask(df).to_numpy(bool))

    final = Criterion("icp", "industry", "in", values=("FinTech", "SaaS"))
    assert match(final, Criterion("icp", "industry", "in", values=("FinTech", "Media", "SaaS")))
    assert match(final, Criterion("icp", "industry", "in", values=("SaaS",)))  # Jaccard 0.5
    assert not match(final, Criterion("icp", "industry", "in", values=("Media",)))
    assert not match(final, Criterion("anti_icp", "industry", "in", values=("FinTech", "SaaS")))
    band = Criterion("icp", "employees", "between", low=150, high=600)
    assert match(band, Criterion("icp", "employees", "between", low=140, high=700))
    assert match(band, Criterion("icp", "employees", ">=", low=160))  # rows overlap enough
    assert not match(band, Criterion("icp", "employees", "<=", high=100))
    assert not match(band, Criterion("icp", "industry", "in", values=("SaaS",)))
    pair = Criterion("anti_icp", "industry", "in", values=("Media",),
                     also=(Criterion("anti_icp", "employees", "<", high=200),))
    assert match(pair, Criterion("anti_icp", "employees", "<", high=180,
                                 also=(Criterion("anti_icp", "industry", "in", values=("Media",)),)))
    assert not match(pair, Criterion("anti_icp", "industry", "in", values=("Media",)))


def _found_set():
    return CriteriaSet(
        icp=[Criterion("icp", "industry", "in", values=("SaaS",)),
             Criterion("icp", "employees", ">=", low=100)],
        verdict={"icp_found": True, "message": "ICP found: matching accounts reach the best "
                 "cohort 2.0x as often as average (95% CI 1.50-2.60) on 300 held-out accounts."})


def test_all_tentative_icp_says_tentative():
    from icpml.criteria import apply_stability

    cs = _found_set()
    apply_stability(cs, {"n_resamples": 8, "per_criterion": {"industry = SaaS": 0.25,
                                                             "employees >= 100": 0.5},
                         "unstable": ["industry = SaaS", "employees >= 100"]})
    assert cs.verdict["tentative"] is True
    assert cs.verdict["message"].startswith("Tentative ICP: matching accounts")
    assert "ICP found" not in cs.verdict["message"] and "'industry = SaaS' 25%" in cs.verdict["message"]


def test_one_stable_criterion_keeps_the_verdict():
    from icpml.criteria import apply_stability

    cs = _found_set()
    msg = cs.verdict["message"]
    apply_stability(cs, {"n_resamples": 8, "per_criterion": {"industry = SaaS": 0.9,
                                                             "employees >= 100": 0.5},
                         "unstable": ["employees >= 100"]})
    assert cs.verdict == {"icp_found": True, "message": msg, "tentative": False}
    cs = _found_set()
    apply_stability(cs, {})  # stability skipped: nothing to say
    assert cs.verdict["tentative"] is False and cs.verdict["message"] == msg


# ----------------------------------------------------------------------------- bounds, sets, split
def _band_rows(seed: int, n: int = 3000, lo: float = 8.0, hi: float = 150.0, lift: float = 3.0):
    """Lognormal revenue; best rate ``lift`` times higher inside [lo, hi] than outside."""
    rng = np.random.default_rng(seed)
    x = np.round(np.exp(rng.normal(np.log(30), 1.2, n)), 2)
    inside = (x >= lo) & (x <= hi)
    p = np.where(inside, 0.15 * lift, 0.15)
    return pd.DataFrame({"revenue": x}), rng.random(n) < p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_band_finds_planted_edges_not_the_tightest(seed):
    from icpml.criteria import fit_band

    rows, best = _band_rows(seed)
    narrow = Criterion("icp", "revenue", "between", low=35, high=200)  # the too-narrow cut of issue 14
    got = fit_band(narrow, rows, best, np.ones(len(rows), dtype=bool), min_k=90)
    assert got.op == "between"
    assert got.low == pytest.approx(8, rel=0.25) and got.high == pytest.approx(150, rel=0.25)


def test_fit_band_keeps_bounds_without_signal():
    from icpml.criteria import fit_band

    rows, _ = _band_rows(0)
    best = np.random.default_rng(5).random(len(rows)) < 0.25
    c = Criterion("icp", "revenue", "between", low=10, high=100)
    assert fit_band(c, rows, best, np.ones(len(rows), dtype=bool), min_k=90) == c


def test_fit_band_one_sided_when_the_top_is_open():
    from icpml.criteria import fit_band

    rows, best = _band_rows(3, lo=20, hi=1e9)
    got = fit_band(Criterion("icp", "revenue", "between", low=40, high=90), rows, best,
                   np.ones(len(rows), dtype=bool), min_k=90)
    assert got.op == ">=" and got.low == pytest.approx(20, rel=0.25)


def test_fit_set_completes_a_category_set():
    from icpml.criteria.bands import fit_set

    rng = np.random.default_rng(0)
    n = 3000
    ind = rng.choice(["SaaS", "FinTech", "Retail", "Media", "Health", "Edu"], size=n)
    best = rng.random(n) < np.where(np.isin(ind, ["SaaS", "FinTech"]), 0.5, 0.15)
    rows = pd.DataFrame({"industry": pd.array(ind, dtype="string")})
    got = fit_set(Criterion("icp", "industry", "in", values=("SaaS",)), rows, best,
                  np.ones(n, dtype=bool), min_k=90)
    assert got.values == ("FinTech", "SaaS")


def test_use_crossfit_on_small_or_underpowered_data():
    from icpml.criteria import use_crossfit

    assert use_crossfit(300, 90, 0.25)
    assert use_crossfit(1400, 420, 0.25)
    assert not use_crossfit(2400, 720, 0.25)
    assert not use_crossfit(4000, 1200, 0.25)
    assert use_crossfit(5000, 20, 0.25)  # too few held-out rows to see lift 2


def test_split_folds_use_every_account_once_as_evidence():
    from icpml.criteria import CriteriaSplit

    idx = pd.Index([f"a{i}" for i in range(103)])
    coh = pd.Series(np.where(np.arange(103) % 4 == 0, "best", "middle"), index=idx)
    sp = CriteriaSplit(pd.DataFrame({"x": range(103)}, index=idx), coh,
                       pd.Series("train", index=idx), seed=3)
    folds = sp.folds()
    assert len(folds) == 5
    out = np.concatenate([te for _, te in folds])
    assert sorted(out.tolist()) == list(range(103))
    for tr, te in folds:
        assert not set(tr) & set(te)
        assert abs((coh.iloc[te] == "best").mean() - 0.25) < 0.06
    assert [te.tolist() for _, te in folds] == [te.tolist() for _, te in sp.folds()]


def test_an_icp_whose_lift_interval_includes_1_is_withheld():
    """No reliable ICP: suggest nothing. Its criteria move to unconfirmed, so no account is
    matched, tiered Tier 1 or exported by it (a cross-fitted Maven product had kept them)."""
    from icpml.criteria.confirm import _withhold_unreliable

    c = Criterion(kind="icp", column="revenue", op="between", low=2250, high=3000)
    cs = CriteriaSet(icp=[c])
    cs.verdict = {"icp_found": False, "message": "No reliable ICP found: ..."}
    _withhold_unreliable(cs)
    assert cs.icp == [] and [u.describe() for u in cs.unconfirmed] == ["2250 <= revenue <= 3000"]
    assert "no better than chance" in cs.unconfirmed[0].evidence["dropped"]
    kept = CriteriaSet(icp=[c])
    kept.verdict = {"icp_found": True}
    _withhold_unreliable(kept)
    assert kept.icp == [c]
