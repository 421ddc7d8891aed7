"""Selection: the ICP conjunction and the anti-ICP exclusions, chosen on the selection rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from icpml._stats import benjamini_hochberg
from icpml.cohorts import BEST, WORST
from icpml.config import CriteriaConfig
from icpml.criteria.bands import fit_band, fit_set, refine_numeric
from icpml.criteria.evidence import _fisher_greater, _min_count, _odds_ratio
from icpml.criteria.propose import (
    _fit_pair,
    conditional_candidates,
    crossfit_pairs,
    interaction_candidates,
    propose_candidates,
)
from icpml.criteria.rule import Criterion, _as_category
from icpml.explain import GroupedShap


def _unexcluded(anti: list[Criterion], rows: pd.DataFrame) -> pd.Series:
    """Which ``rows`` no exclusion of ``anti`` removes (boolean, indexed like ``rows``)."""
    clear = pd.Series(True, index=rows.index)
    for c in anti:
        clear &= ~c.mask(rows)
    return clear


def category_contrasts(rows: pd.DataFrame, cohort: pd.Series, kinds: dict[str, str],
                       allowed: list[str], cfg: CriteriaConfig) -> list[Criterion]:
    """Candidates from plain best / worst rates per category (small data), beside SHAP's.

    On a few hundred accounts the fit model's trees cannot split a category held by a
    few dozen of them (the leaf size forbids it), so SHAP proposes nothing there. Per
    categorical or boolean column of ``allowed``, over the levels covering at least
    ``_min_count`` of ``rows``: the ICP candidates are the level set whose one-sided
    Fisher p of a higher best rate inside is smallest (levels added in order of their
    best rate) and the single strongest level; the exclusion candidates are the (at
    most two) levels with the smallest :func:`_exclusion_p`. Only levels significant
    at ``cfg.alpha`` on ``rows`` are proposed; selection and the out-of-fold
    confirmation judge them like any other candidate.

    Parameters
    ----------
    rows : pandas.DataFrame
        Coerced accounts the candidates are drawn from (the selection rows).
    cohort : pandas.Series
        Cohort of each row of ``rows``.
    kinds, allowed, cfg
        Column kinds, the columns criteria may name, the criteria settings.

    Returns
    -------
    list of Criterion
        ICP and exclusion candidates (``source="fit_model"``), without evidence.
    """
    b = (cohort == BEST).to_numpy(bool)
    w = (cohort == WORST).to_numpy(bool)
    n = len(rows)
    if n == 0 or not b.any() or not w.any():
        return []
    min_k = _min_count(cfg, n)
    nb = int(b.sum())
    out: list[Criterion] = []
    for col in allowed:
        if kinds.get(col) not in ("categorical", "boolean") or col not in rows.columns:
            continue
        codes, cats = pd.factorize(_as_category(rows[col]), sort=True)
        if len(cats) < 2:
            continue
        n_per = np.bincount(codes, minlength=len(cats))
        b_per = np.bincount(codes, weights=b.astype(float), minlength=len(cats))
        ok = np.flatnonzero(n_per >= min_k)
        # ICP: levels by best rate, the prefix with the smallest Fisher p (one level or a set)
        order = ok[np.argsort(-(b_per[ok] / n_per[ok]), kind="stable")]
        best_p, best_set, k, pos = 1.0, [], 0, 0
        for j, lv in enumerate(order[:-1]):  # never every level (no contrast)
            k, pos = k + int(n_per[lv]), pos + int(b_per[lv])
            p = _fisher_greater(pos, k, nb - pos, n - k)
            if p < best_p:
                best_p, best_set = p, [str(cats[i]) for i in order[: j + 1]]
        if best_set and best_p < cfg.alpha:
            out.append(Criterion("icp", col, "in", values=tuple(sorted(best_set)),
                                 source="fit_model"))
            if len(best_set) > 1:
                out.append(Criterion("icp", col, "in", values=(best_set[0],), source="fit_model"))
        # exclusions: single levels where accounts are actively bad
        scored = []
        for lv in ok:
            m = codes == lv
            p = _exclusion_p(m, b, w, None, "fit_model", cfg)
            if p < cfg.alpha:
                scored.append((p, str(cats[lv])))
        for _, name in sorted(scored)[:2]:
            out.append(Criterion("anti_icp", col, "in", values=(name,), source="fit_model"))
    return out


def _exclusion_p(m: np.ndarray, b: np.ndarray, w: np.ndarray, ch: np.ndarray | None,
                 source: str, cfg: CriteriaConfig) -> float:
    """One-sided p-value that accounts in ``m`` are actively bad; 1.0 if an effect-size gate fails.

    Fit side: best rate at most half of average and worst rate at least
    ``min_exclusion_worst_lift`` times average (point estimates), and the larger of the
    one-sided Fisher p-values of a higher worst rate and a lower best rate inside than
    outside. Churn side: churn significantly above 1.5x the rest.
    """
    k, n = int(m.sum()), len(m)
    if k < 3 or k == n:
        return 1.0
    if source == "churn_model":
        if ch is None:
            return 1.0
        rout = ch[~m].mean()
        p0 = min(1.5 * rout, 0.999)
        if not rout > 0:
            return 1.0
        # the churn rate inside must *significantly* exceed 1.5x the rest's
        return float(stats.binomtest(int(ch[m].sum()), k, p0, alternative="greater").pvalue)
    base, wbase = b.mean(), w.mean()
    if not (base > 0 and wbase > 0 and b[m].mean() <= 0.5 * base
            and w[m].mean() >= cfg.min_exclusion_worst_lift * wbase):
        return 1.0
    # effect sizes as point estimates; significance as both rates differing from the rest's
    # (a test against min_exclusion_worst_lift x average, as before, needs about 30 accounts
    # inside to pass even at a 3x worst rate, so a 5% segment of a few hundred selection
    # rows was never proposed for confirmation; the held-out / out-of-fold test and the
    # Benjamini-Hochberg correction there guard against what the selection lets through)
    p_worst = _fisher_greater(int(w[m].sum()), k, int(w[~m].sum()), n - k)
    return float(max(p_worst, _fisher_greater(int(b[~m].sum()), n - k, int(b[m].sum()), k)))


def _drops_too_many_best(m: np.ndarray, b: np.ndarray, cfg: CriteriaConfig) -> bool:
    """Whether exclusion ``m`` drops more than ``cfg.max_wrongly_excluded`` of the best
    accounts ``b``, the cap counted in whole accounts rounded up: on 78 best accounts
    the cap is 4 (3.9), where a share test would veto an exclusion for its 4th best
    account (5.1%) on a few hundred accounts."""
    return int(m[b].sum()) > math.ceil(cfg.max_wrongly_excluded * int(b.sum()) - 1e-9)


def _select_exclusions(cands: list[Criterion], sel: pd.DataFrame, cohort: pd.Series,
                       churned: pd.Series | None, cfg: CriteriaConfig,
                       fdr: bool = False) -> list[Criterion]:
    """Greedy: among exclusions significant at ``alpha``, the one with the strongest
    effect (odds ratio of worst cohort, or of churn) first; each later one must
    still hold on the accounts the earlier ones left in, so proxies of one cause
    and broad "outside the ICP" ranges drop out.

    With ``fdr`` (cross-fitting: the candidates were proposed by a model fitted on
    these same rows, dozens of them), only candidates whose :func:`_exclusion_p` on all
    of ``sel`` passes Benjamini-Hochberg at ``alpha`` across the candidates enter the
    greedy: otherwise each fold keeps a few chance exclusions, and every one of them
    is a hypothesis the out-of-fold confirmation must correct for. The most significant
    exclusion then goes first (not the strongest: on a few hundred rows the narrowest
    slice of a cause, an interaction inside it, has the largest odds ratio by chance),
    single-column exclusions before interactions."""
    b = (cohort == BEST).to_numpy(bool)
    w = (cohort == WORST).to_numpy(bool)
    ch = churned.to_numpy(bool) if churned is not None else None
    masks = {c.key: c.mask(sel).to_numpy(bool) for c in cands}
    pool = [c for c in cands if not _drops_too_many_best(masks[c.key], b, cfg)]
    if fdr and pool:
        p0 = np.array([_exclusion_p(masks[c.key], b, w, ch, c.source, cfg) for c in pool])
        q0 = benjamini_hochberg(p0)
        pool = [c for c, q in zip(pool, q0, strict=True) if q < cfg.alpha]
    kept: list[Criterion] = []
    left = np.ones(len(sel), dtype=bool)
    while pool and len(kept) < cfg.max_anti_criteria:
        scored = []
        for c in pool:
            m = masks[c.key]
            p = _exclusion_p(m[left], b[left], w[left], ch[left] if ch is not None else None,
                             c.source, cfg)
            if p < cfg.alpha:
                bad = ch if c.source == "churn_model" else w
                effect = _odds_ratio(bad[left], m[left])
                scored.append(((bool(c.also), p, -effect) if fdr else (-effect, p, 0))
                              + (c.describe(), c))
        if not scored:
            break
        scored.sort(key=lambda t: t[:4])
        best = scored[0][-1]
        kept.append(best)
        left &= ~masks[best.key]
        pool = [c for c in pool if c.key != best.key]
    # an interaction inside a kept exclusion adds nothing: "on-prem and < 200 employees"
    # when "on-prem" itself is kept (the greedy takes the narrower, stronger one first)
    return [c for c in kept
            if not any(d is not c and not (masks[c.key] & ~masks[d.key]).any() for d in kept)]


class _IcpProposer:
    """What the fit model says inside the ICP segment chosen so far (for the greedy of step 2).

    ``candidates(kept)``: ICP candidates from the SHAP values of the proposal accounts that
    meet every kept criterion and no exclusion (:func:`conditional_candidates`).
    ``strength(kept)``: per column, the mean positive SHAP there, i.e. how much the model
    says each column still adds within that segment.
    """

    def __init__(self, expl: GroupedShap, anti: list[Criterion], kinds: dict[str, str],
                 allowed: list[str], cfg: CriteriaConfig) -> None:
        self.expl, self.kinds, self.allowed, self.cfg = expl, kinds, allowed, cfg
        self.min_count = _min_count(cfg, len(expl.values))
        self.clear = _unexcluded(anti, expl.data).to_numpy(bool)

    def _inside(self, kept: list[Criterion]) -> np.ndarray:
        inside = self.clear.copy()
        for c in kept:
            inside &= c.mask(self.expl.data).to_numpy(bool)
        return inside

    def candidates(self, kept: list[Criterion]) -> list[Criterion]:
        return conditional_candidates(self.expl, self._inside(kept), self.kinds, self.allowed,
                                      self.cfg, source="fit_model", kind="icp",
                                      min_count=self.min_count)

    def strength(self, kept: list[Criterion]) -> dict[str, float]:
        inside = self._inside(kept)
        if not inside.any():
            return {}
        return self.expl.values[inside].clip(lower=0).mean().to_dict()


def _select_inclusions(cands: list[Criterion], sel: pd.DataFrame, is_best: pd.Series,
                       start: pd.Series, cfg: CriteriaConfig,
                       proposer: _IcpProposer | None = None,
                       by_p: bool = False, search_gate: bool = False) -> list[Criterion]:
    """Greedy ICP (see the module docstring, step 2).

    Each round, every candidate is tested within the segment so far (one-sided Fisher,
    matching vs not matching, on the selection rows). Among the columns with a candidate
    significant at ``alpha`` (single conditions before pairs: a pair is taken only in a
    round where no single condition passes), the one the model says adds most within the segment
    (``proposer.strength``) is taken, with its most significant candidate: the selection
    rows decide *whether* and *where* to cut, the model's SHAP on many more rows decides
    *which column* when several pass (on a few dozen selection rows, p-values of a strong
    and a weak column can tie by chance). With ``by_p`` (cross-fitting: the model was
    fitted on the selection rows themselves, so its SHAP adds no rows and overfits them,
    and cannot see categories its leaves could not split) the most significant column
    is taken instead, its p-value multiplied by the number of cuts its kind of
    criterion could have been chosen among (:func:`_search_size`): a 0.1-SD-wide
    numeric band is one of ~n^2/2 windows, and the best of them is a fluke of the sample
    that every fold shares (it then also holds out of fold: the folds choose it from
    each other's rows).

    With ``search_gate`` (cross-fitting, the main greedy) the *first* single condition must
    also pass at ``alpha`` after that multiplication: there the rows that test a candidate
    are the rows its cut or category set was searched on (a plain best / worst contrast
    orders the levels by their best rate on these very rows), so its raw p-value is a
    search score, not a test. On null tables of 200-1,500 accounts every fold otherwise
    took a chance category set, the folds (sharing three quarters of their rows) took the
    same one, and the out-of-fold evidence, pooled over folds whose choices depend on each
    other's left-out rows, let a two-condition chance ICP through. Later conditions are
    tested within the segment at plain ``alpha``, as before (gating them dropped true
    second conditions of small two-condition ICPs); the out-of-fold confirmation judges
    them. Pairs are not gated here: :func:`crossfit_pairs` already judged them out of fold.
    """
    kept: list[Criterion] = []
    seg = start.copy()
    b = is_best.to_numpy(bool)
    min_k = _min_count(cfg, len(sel))
    remaining = list(cands)
    while len(kept) < cfg.max_icp_criteria:
        if proposer is not None and kept:
            have = {c.key for c in remaining}
            taken = {col for k in kept for col in k.columns}
            remaining += [c for c in proposer.candidates(kept) if c.key not in have
                          and not taken & set(c.columns)]
        if not remaining:
            break
        s = seg.to_numpy(bool)
        passing: dict[str, tuple[float, Criterion]] = {}
        for c in remaining:
            p = _p_within(c, sel, s, b, min_k)
            # cross-fitting: the rows that test the first condition are the rows its cut or
            # set was searched on, so it must pass after that search (see the docstring)
            gate = (p * _search_size(c, sel) if p is not None and search_gate and not kept
                    and not c.also else p)
            if gate is not None and gate < cfg.alpha and (c.column not in passing
                                                           or p < passing[c.column][0]):
                passing[c.column] = (p, c)
        if not passing:
            break
        # single conditions first: a pair is for parts that are flat alone, and one found by
        # the pair search on these same rows (cross-fitting) passes here too easily
        single = {k: v for k, v in passing.items() if not v[1].also}
        passing = single or passing
        if by_p:
            col = min(passing, key=lambda k: (passing[k][0] * _search_size(passing[k][1], sel),
                                              passing[k][0], k))
        else:
            strength = proposer.strength(kept) if proposer is not None else {}
            col = min(passing, key=lambda k: (-strength.get(k, 0.0), passing[k][0], k))
        best_c = passing[col][1]
        kept.append(best_c)
        seg = seg & best_c.mask(sel)
        remaining = [c for c in remaining if not set(c.columns) & set(best_c.columns)]
    return kept


def _search_size(c: Criterion, rows: pd.DataFrame) -> float:
    """How many cuts of its kind ``c`` was chosen among on ``rows`` (a Bonferroni factor
    for ranking and for the cross-fitted greedy's first condition, never for
    confirmation): distinct values for a one-sided numeric cut, half their square for a
    band, the levels for a single category, the ``2^(levels - 1) - 1`` two-way splits of
    the levels for a set of several (levels capped at 40); the product over an
    interaction's parts."""
    size = 1.0
    for part in c.parts:
        u = max(int(rows[part.column].nunique()), 2) if part.column in rows.columns else 2
        if part.op == "between":
            size *= u * u / 2
        elif part.op == "in" and len(part.values) > 1:
            size *= 2.0 ** (min(u, 40) - 1) - 1
        else:
            size *= u
    return size


def _p_within(c: Criterion, rows: pd.DataFrame, seg: np.ndarray, b: np.ndarray,
              min_k: int) -> float | None:
    """One-sided Fisher p that ``c`` raises the best rate ``b`` within segment ``seg`` of ``rows``.

    ``None`` when ``c`` covers fewer than ``min_k`` of the segment or all of it (no test).
    """
    m = c.mask(rows).to_numpy(bool)
    inside, outside = seg & m, seg & ~m
    k = int(inside.sum())
    if k < min_k or not outside.any():
        return None
    return _fisher_greater(int(b[inside].sum()), k, int(b[outside].sum()), int(outside.sum()))


def _backfit(kept: list[Criterion], sel: pd.DataFrame, b: np.ndarray, start: pd.Series,
             proposer: _IcpProposer, min_k: int) -> list[Criterion]:
    """Re-choose each kept criterion's cut given all the *others* (one pass, in order).

    A criterion chosen early was cut before the later ones existed: a size band taken
    before the industries it matters in is too wide. Its column's candidates are proposed
    again from the SHAP values inside the other criteria's segment, and the most
    significant one there (the current cut included, kept on ties) replaces it. Which
    columns form the ICP is settled; this only moves cuts, on all non-held-out rows.
    """
    kept = list(kept)
    for i, c in enumerate(kept):
        if c.also:  # a pair's parts are re-chosen given each other (_fit_pair)
            continue
        others = kept[:i] + kept[i + 1:]
        seg = start.to_numpy(bool).copy()
        for o in others:
            seg &= o.mask(sel).to_numpy(bool)
        alts = [c] + [a for a in proposer.candidates(others) if a.column == c.column and a.key != c.key]
        best_p, best = None, c
        for a in alts:
            p = _p_within(a, sel, seg, b, min_k)
            if p is not None and (best_p is None or p < best_p):
                best_p, best = p, a
        kept[i] = best
    return kept


def select_criteria(fit_expl: GroupedShap, churn_expl: GroupedShap | None,
                    kinds: dict[str, str], allowed: list[str], select: pd.DataFrame,
                    select_cohort: pd.Series, *, select_churn: pd.Series | None = None,
                    refine_rows: pd.DataFrame | None = None,
                    refine_cohort: pd.Series | None = None,
                    crossfit: bool = False,
                    alternative: list[Criterion] | None = None,
                    cfg: CriteriaConfig) -> tuple[list[Criterion], list[Criterion], int]:
    """Steps 1 and 2: propose candidates, select exclusions then inclusions, refine bounds.

    Parameters
    ----------
    fit_expl : GroupedShap
        Grouped SHAP values of the fit model on the proposal rows.
    churn_expl : GroupedShap, optional
        The same for the churn model (None without a churn column).
    kinds : dict of str to str
        Kind of each targetable column.
    allowed : list of str
        Columns criteria may name.
    select : pandas.DataFrame
        Coerced accounts of the selection split (candidates are chosen here).
    select_cohort : pandas.Series
        Cohort of each row of ``select``.
    select_churn : pandas.Series of bool, optional
        Churn of each row of ``select``.
    refine_rows : pandas.DataFrame, optional
        Accounts on which numeric bounds are refined on outcome labels.
    refine_cohort : pandas.Series, optional
        Cohort of each row of ``refine_rows``.
    crossfit : bool, default False
        The selection rows are the fit model's own training rows (K-fold cross-fitting
        on small data): also propose :func:`category_contrasts` from them (the trees
        cannot split rare categories), and let the greedy take the most significant
        column rather than the one with the most SHAP (``by_p`` of the greedy).
    alternative : list, optional
        Filled (in place) with the pair-led ICP (:func:`_pair_search`) when one was built
        and the greedy's ICP was preferred to it, bounds fitted like the returned ICP's; left
        empty otherwise. :func:`~icpml.criteria.confirm.derive_criteria` confirms it on the
        held-out rows when none of the returned ICP's criteria holds up there.
    cfg : CriteriaConfig
        The criteria settings.

    Returns
    -------
    tuple
        ``(exclusions, inclusions, n_candidates)``: two lists of
        :class:`Criterion` without held-out evidence yet, and the number of
        candidates proposed.
    """
    cands = propose_candidates(fit_expl, kinds, allowed, cfg, source="fit_model")
    if churn_expl is not None:
        cands += propose_candidates(churn_expl, kinds, allowed, cfg, source="churn_model")
    if crossfit:
        have = {c.key for c in cands}
        cands += [c for c in category_contrasts(select, select_cohort, kinds, allowed, cfg)
                  if c.key not in have]
    anti_c = [c for c in cands if c.kind == "anti_icp"]
    icp_c = [c for c in cands if c.kind == "icp"]
    pairs = interaction_candidates(fit_expl, anti_c, kinds, allowed, cfg, source="fit_model")
    if churn_expl is not None:
        pairs += interaction_candidates(churn_expl, anti_c, kinds, allowed, cfg, source="churn_model")
    anti = _select_exclusions(anti_c + pairs, select, select_cohort, select_churn, cfg,
                              fdr=crossfit)
    not_excluded = _unexcluded(anti, select)
    icp_pairs, p_pairs, n_pairs = _pair_search(fit_expl, kinds, allowed, anti, select,
                                               select_cohort, refine_rows, refine_cohort, cfg)
    proposer = _IcpProposer(fit_expl, anti, kinds, allowed, cfg)
    icp = _select_inclusions(icp_c + icp_pairs, select, select_cohort == BEST, not_excluded,
                             cfg, proposer, by_p=crossfit, search_gate=crossfit)
    if icp_pairs:  # or the pair first, then the greedy within it (see _pair_search)
        lead = icp_pairs[:1]
        after = _After(proposer, lead)
        rest = [c for c in icp_c + icp_pairs[1:] + after.candidates([])
                if not set(c.columns) & set(lead[0].columns)]
        led = lead + _select_inclusions(
            rest, select, select_cohort == BEST, not_excluded & lead[0].mask(select),
            cfg.model_copy(update={"max_icp_criteria": cfg.max_icp_criteria - 1}), after,
            by_p=crossfit)
        if refine_rows is not None and refine_cohort is not None:
            rows, cohort = refine_rows, refine_cohort
        else:
            rows, cohort = select, select_cohort
        # against an empty greedy the comparison below is vacuous (any pair beats nothing):
        # the lead must then pass a test that no row it was chosen on took part in
        if icp:
            use_led = _conjunction_p(led, anti, rows, cohort) < _conjunction_p(icp, anti, rows, cohort)
        else:
            use_led = p_pairs[0] < cfg.alpha
        if use_led:
            icp = led
        elif alternative is not None:
            alternative.extend(led)
    # cuts are re-chosen only when they are also refined (the real run): the stability
    # resamples pass no refine rows, and their match keys ignore numeric bounds anyway
    if len(icp) > 1 and refine_rows is not None and refine_cohort is not None:
        rows, cohort = refine_rows, refine_cohort
        clear = _unexcluded(anti, rows)
        icp = _backfit(icp, rows, (cohort == BEST).to_numpy(bool), clear, proposer,
                       _min_count(cfg, len(rows)))
    if refine_rows is not None and refine_cohort is not None:
        anti = [refine_numeric(c, refine_rows, refine_cohort) for c in anti]
        icp = _fit_bands(icp, anti, refine_rows, refine_cohort, cfg)
        if alternative:
            alternative[:] = _fit_bands(alternative, anti, refine_rows, refine_cohort, cfg)
    return anti, icp, len(cands) + len(pairs) + n_pairs


def _pair_search(fit_expl: GroupedShap, kinds: dict[str, str], allowed: list[str],
                 anti: list[Criterion], select: pd.DataFrame, select_cohort: pd.Series,
                 refine_rows: pd.DataFrame | None, refine_cohort: pd.Series | None,
                 cfg: CriteriaConfig) -> tuple[list[Criterion], list[float], int]:
    """ICP pairs selected on cross-fitted evidence (:func:`crossfit_pairs`).

    The pairs are searched on the refinement rows (train + selection; the selection rows
    alone without them), accounts an exclusion removes left out of the scoring, and each
    is judged out of fold on those rows: every account serves as evidence once, instead of
    the few hundred selection rows the greedy tests on (too few for a pair covering a few
    percent of them). Kept: the pairs whose out-of-fold p-value is below ``alpha``,
    most significant first. :func:`select_criteria` then builds two ICPs: the greedy's
    as before (the pairs among its candidates, tested on the selection rows), and one
    that starts with the first pair and lets the greedy work within it. Against a
    greedy ICP, the pair's ICP is kept when its whole segment is the more significant on
    the refinement rows (one-sided Fisher among accounts no exclusion removes,
    :func:`_conjunction_p`). Against an empty greedy ICP (where any pair beats nothing),
    when the lead passes one honest test at ``alpha``: the search's own out-of-fold test
    (``p_top`` of :func:`crossfit_pairs`: each fold's top pair judged its left-out rows)
    when the lead is the search's top pair, else its column pair's out-of-fold p-value
    times the column pairs searched (Bonferroni: that test reuses the rows the column
    pair was chosen on). Otherwise the greedy's. (The Bonferroni pass once also
    overrode a non-empty greedy ICP: a proxy pair, revenue band and intent, replaced a
    product's planted three-condition ICP.)
    (Always starting with the pair let a chance pair crowd out a conjunctive ICP whose
    conditions the greedy finds one at a time.) Held-out (or outer cross-fitted)
    confirmation still judges them, with the column pairs searched counted in the
    Benjamini-Hochberg family.

    Returns the kept pairs (out-of-fold p-value or lead p-value below ``alpha``), lead
    first, their lead p-values as above (ascending), and the number of column pairs
    searched."""
    rows, cohort = select, select_cohort
    if refine_rows is not None and refine_cohort is not None:
        rows, cohort = refine_rows, refine_cohort
    clear = _unexcluded(anti, rows).to_numpy(bool)
    found = crossfit_pairs(fit_expl, kinds, allowed, rows, (cohort == BEST).to_numpy(bool),
                           clear, cfg)
    # the lead's single-hypothesis p: the search's own out-of-fold test when it stands for
    # the top pair, else the column pair's test made honest by Bonferroni over the searched
    lead_p = [found.p_top if i == 0 and found.p_top < cfg.alpha
              else min(1.0, p * max(found.searched, 1)) for i, p in enumerate(found.p_oof)]
    kept = sorted((lead_p[i], p, i) for i, p in enumerate(found.p_oof)
                  if p < cfg.alpha or lead_p[i] < cfg.alpha)
    return ([found.pairs[i] for _, _, i in kept], [lp for lp, _, _ in kept], found.searched)


def _conjunction_p(icp: list[Criterion], anti: list[Criterion], rows: pd.DataFrame,
                   cohort: pd.Series) -> float:
    """One-sided Fisher p that accounts meeting every criterion of ``icp`` reach the best
    cohort more often than the others, among the ``rows`` no exclusion removes (1.0 for an
    empty ``icp``)."""
    if not icp:
        return 1.0
    clear = _unexcluded(anti, rows).to_numpy(bool)
    m = clear.copy()
    for c in icp:
        m &= c.mask(rows).to_numpy(bool)
    b = (cohort == BEST).to_numpy(bool)
    out = clear & ~m
    return _fisher_greater(int(b[m].sum()), int(m.sum()), int(b[out].sum()), int(out.sum()))


class _After:
    """``proposer`` as if ``first`` (the cross-fitted pair) were kept before the greedy's
    picks; its candidates never name ``first``'s columns."""

    def __init__(self, proposer: _IcpProposer, first: list[Criterion]) -> None:
        self.proposer, self.first = proposer, first
        self.cols = {col for c in first for col in c.columns}

    def candidates(self, kept: list[Criterion]) -> list[Criterion]:
        return [c for c in self.proposer.candidates(self.first + kept)
                if not self.cols & set(c.columns)]

    def strength(self, kept: list[Criterion]) -> dict[str, float]:
        return self.proposer.strength(self.first + kept)


def _fit_bands(icp: list[Criterion], anti: list[Criterion], rows: pd.DataFrame,
               cohort: pd.Series, cfg: CriteriaConfig, passes: int = 2) -> list[Criterion]:
    """Each ICP criterion's bounds or category set chosen given all the others.

    :func:`fit_band` for numeric criteria, :func:`fit_set` for category sets; two passes
    in order, so a criterion chosen before another one moved is chosen again.
    """
    b = (cohort == BEST).to_numpy(bool)
    clear = _unexcluded(anti, rows).to_numpy(bool)
    min_k = _min_count(cfg, len(rows))
    icp = list(icp)
    for _ in range(passes):
        for i, c in enumerate(icp):
            seg = clear.copy()
            for j, o in enumerate(icp):
                if j != i:
                    seg &= o.mask(rows).to_numpy(bool)
            if c.also:  # a pair's parts are chosen on every row: see _fit_pair
                icp[i] = _fit_pair(c, rows, b, seg | ~clear, min_k)
            else:
                icp[i] = fit_set(fit_band(c, rows, b, seg, min_k), rows, b, seg, min_k)
    return icp
