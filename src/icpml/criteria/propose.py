"""Candidate criteria proposed from grouped SHAP values: numeric bands, category sets, low-cardinality codes, conditional and interaction candidates."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from icpml._vocab import MISSING
from icpml.config import CriteriaConfig
from icpml.criteria.bands import _roundest, _stump, fit_band, fit_set
from icpml.criteria.evidence import _min_count
from icpml.criteria.rule import Criterion, _as_category, _code_value, _is_number
from icpml.data import spelling_key
from icpml.explain import GroupedShap
from icpml.schema import numeric_codes


# ----------------------------------------------------------------------------- candidates
def _tau(s: np.ndarray) -> float:
    return max(0.02, 0.1 * float(np.mean(np.abs(s)))) if len(s) else 0.02




#: A numeric column with at most this many distinct values is read value by value (a code).
_MAX_CODE_VALUES = 5


def _numeric_candidates(col: str, x: pd.Series, s: pd.Series, sign: int, kind: str,
                        source: str, min_count: int, n_bins: int = 20) -> list[Criterion]:
    """Ranges of ``col`` where SHAP has sign ``sign`` (see module docstring, step 1).

    A code column (:func:`icpml.schema.numeric_codes`: Channel 1/2, a risk class 1-5) gets
    value sets instead, as a category would (``channel = 2``, ``risk_class in {1, 4}``).
    """
    ok = x.notna().to_numpy()
    xv = x.to_numpy(float)[ok]
    sv = s.to_numpy(float)[ok]
    out: list[Criterion] = []
    if len(xv) < 2 * min_count or np.ptp(xv) == 0:
        return out
    codes = numeric_codes(xv)
    if codes:
        idx = np.searchsorted(np.asarray(codes, dtype=float), xv)
        out = _categorical_candidates(col, idx, np.asarray(codes, dtype=object), pd.Series(sv),
                                      sign, source, min_count)
        return out + _missing_candidate(col, x, s, sign, kind, source, min_count)
    order = np.argsort(xv, kind="stable")
    xv, sv = xv[order], sv[order]
    tau = _tau(sv)
    distinct = np.unique(xv)
    if len(distinct) <= _MAX_CODE_VALUES:
        # a numeric code (Channel 1/2, a 1-5 grade): one bin per value, so each value can be
        # cut off exactly; quantile edges would put both values of a 68/32 split in one bin
        bin_id = np.searchsorted(distinct, xv)
    else:
        # quantile bins over rows, never splitting a run of equal values
        edges = np.unique(np.quantile(xv, np.linspace(0, 1, n_bins + 1)))
        bin_id = np.clip(np.searchsorted(edges, xv, side="right") - 1, 0, len(edges) - 2)
    means = pd.Series(sv).groupby(bin_id).mean()
    counts = pd.Series(sv).groupby(bin_id).size()
    ids = means.index.to_numpy()
    signed = means.to_numpy() * sign
    peak = float(signed.max()) if len(signed) else 0.0
    # two levels: every clearly signed bin, and the core where the effect is strongest
    # (so "employees < 50" is found inside a broader "employees < 150" dip)
    levels = [tau] + ([tau + 0.5 * (peak - tau)] if peak > 2 * tau else [])
    runs = []
    for level in levels:
        start = None
        for j, f in enumerate(signed > level):
            if f and start is None:
                start = j
            if (not f or j == len(signed) - 1) and start is not None:
                runs.append((start, j if f else j - 1))
                start = None
    scored = []
    for a, z in dict.fromkeys(runs):
        cnt = int(counts.iloc[a:z + 1].sum())
        if cnt < min_count:
            continue
        mass = float((means.iloc[a:z + 1] * counts.iloc[a:z + 1]).sum() * sign)
        scored.append((mass, a, z))
    scored.sort(key=lambda t: -t[0])
    for _, a, z in scored[:4]:
        low = high = None
        if len(distinct) <= _MAX_CODE_VALUES:  # a code: cut exactly between adjacent values
            if a > 0:
                low = _roundest(distinct[a - 1], distinct[a], include_lo=False, include_hi=True)
            if z < len(distinct) - 1:
                high = _roundest(distinct[z], distinct[z + 1], include_lo=True, include_hi=False)
        elif a > 0:  # refine the lower edge within bins a-1 and a
            sel = np.isin(bin_id, ids[max(a - 2, 0):a + 1])
            xs, ss = xv[sel], sv[sel]
            i = _stump(xs, ss * sign)
            low = _roundest(xs[i - 1], xs[i], include_lo=False, include_hi=True) if i else None
        if z < len(ids) - 1 and len(distinct) > _MAX_CODE_VALUES:
            sel = np.isin(bin_id, ids[z:z + 3])
            xs, ss = xv[sel], sv[sel]
            i = _stump(xs, -ss * sign)
            high = _roundest(xs[i - 1], xs[i], include_lo=True, include_hi=False) if i else None
        crit_kind = "icp" if (sign > 0 and source == "fit_model") else "anti_icp"
        if low is not None and high is not None and low <= high:
            out.append(Criterion(crit_kind, col, "between", low=low, high=high, source=source))
        elif low is not None:
            out.append(Criterion(crit_kind, col, ">=", low=low, source=source))
        elif high is not None:
            # exclusions read naturally as strict "below": employees < 50
            if crit_kind == "anti_icp":
                nxt = xv[xv > high]
                bound = _roundest(high, nxt.min(), include_lo=False, include_hi=True) if len(nxt) else high
                out.append(Criterion(crit_kind, col, "<", high=bound, source=source))
            else:
                out.append(Criterion(crit_kind, col, "<=", high=high, source=source))
    return out + _missing_candidate(col, x, s, sign, kind, source, min_count)


def _missing_candidate(col: str, x: pd.Series, s: pd.Series, sign: int, kind: str, source: str,
                       min_count: int) -> list[Criterion]:
    """``col is unknown`` when the missing cells' mean SHAP has sign ``sign``."""
    if kind == "numeric" and x.isna().sum() >= min_count:
        ms = s[x.isna()].to_numpy(float)
        if ms.mean() * sign > _tau(s.to_numpy(float)[x.notna().to_numpy()]):
            crit_kind = "icp" if (sign > 0 and source == "fit_model") else "anti_icp"
            return [Criterion(crit_kind, col, "is_missing", source=source)]
    return []


def _category_codes(expl: GroupedShap, col: str) -> tuple[np.ndarray, np.ndarray]:
    """Category codes of ``col`` in ``expl.data`` (missing as ``(missing)``), computed once.

    Candidates are proposed many times from subsets of one explanation (segments,
    interactions, stability resamples' own explanations); :func:`_subset` hands the
    codes on, so the text conversion and hashing happen once per column.
    """
    cache = expl.category_codes
    if col not in cache:
        codes, cats = pd.factorize(_as_category(expl.data[col]), sort=True)
        cache[col] = (codes, np.asarray(cats, dtype=object))
    return cache[col]


def _categorical_candidates(col: str, codes: np.ndarray, cats: np.ndarray, s: pd.Series,
                            sign: int, source: str, min_count: int) -> list[Criterion]:
    """Category sets of ``col`` whose mean SHAP has sign ``sign``.

    ``cats`` holds the category text, or the numbers of a code column (the criteria then
    hold numbers: ``risk_class in {1, 4}``).
    """
    sv = s.to_numpy(float)
    n_per = np.bincount(codes, minlength=len(cats))
    mean = np.bincount(codes, weights=sv, minlength=len(cats)) / np.maximum(n_per, 1)
    supported = n_per >= min_count
    tau = _tau(sv)
    good = np.flatnonzero(supported & (mean * sign > tau))
    good = good[np.argsort(-mean[good] * sign, kind="stable")]  # strongest first
    out: list[Criterion] = []
    if len(good) == 0 or len(good) == int(supported.sum()):
        return out  # nothing stands out, or every category does (no contrast to draw)
    crit_kind = "icp" if (sign > 0 and source == "fit_model") else "anti_icp"
    names = [_code_value(cats[i]) if _is_number(cats[i]) else str(cats[i]) for i in good]
    values = tuple(sorted(names))
    if crit_kind == "icp":
        out.append(Criterion(crit_kind, col, "in", values=values, source=source))
        if len(values) > 1:
            out.append(Criterion(crit_kind, col, "in", values=(names[0],), source=source))
    else:
        for c in names[:3]:
            out.append(Criterion(crit_kind, col, "in", values=(c,), source=source))
        if len(values) > 1:
            out.append(Criterion(crit_kind, col, "in", values=values, source=source))
    return out


def propose_candidates(expl: GroupedShap, kinds: dict[str, str], allowed: list[str],
                       cfg: CriteriaConfig, *, source: str,
                       min_count: int | None = None) -> list[Criterion]:
    """Step 1: candidate criteria from one model's grouped SHAP values.

    For the fit model, the positive side gives ICP candidates and the negative
    side exclusion candidates; for the churn model only the positive (more
    churn) side is used, as exclusion candidates. SHAP values are TreeSHAP
    (Lundberg et al. 2020), grouped per business column (:mod:`icpml.explain`).

    Parameters
    ----------
    expl : GroupedShap
        Grouped SHAP values of one model on the proposal rows.
    kinds : dict of str to str
        Kind (``numeric``, ``categorical``, ``boolean``) of each targetable column.
    allowed : list of str
        Columns criteria may name.
    cfg : CriteriaConfig
        ``top_features``, ``min_support`` and the other criteria settings.
    source : str
        ``fit_model`` or ``churn_model``: which side(s) are read.
    min_count : int, optional
        Fewest accounts a candidate must cover; from ``cfg.min_support`` when None.

    Returns
    -------
    list of Criterion
        Candidates without evidence, ICP and exclusion candidates mixed (see
        :attr:`Criterion.kind`).
    """
    vals = expl.values[[c for c in expl.values.columns if c in allowed]]
    if vals.empty:
        return []
    n = len(vals)
    if min_count is None:
        min_count = _min_count(cfg, n)
    signs = (1, -1) if source == "fit_model" else (1,)
    out: list[Criterion] = []
    for sign in signs:
        side = (vals * sign).clip(lower=0).mean().sort_values(ascending=False, kind="stable")
        for col in side.index[: cfg.top_features]:
            if side[col] <= 0:
                continue
            x, s = expl.data[col], vals[col]
            if kinds[col] == "numeric":
                out += _numeric_candidates(col, x, s, sign, kinds[col], source, min_count)
            else:
                codes, cats = _category_codes(expl, col)
                out += _categorical_candidates(col, codes, cats, s, sign, source, min_count)
    # deduplicate, keeping the first (strongest) occurrence
    seen, uniq = set(), []
    for c in out:
        if c.key not in seen:
            seen.add(c.key)
            uniq.append(c)
    return uniq


def _subset(expl: GroupedShap, rows: np.ndarray) -> GroupedShap:
    """The same explanation restricted to some of its accounts."""
    return replace(expl, values=expl.values[rows], data=expl.data[rows],
                   raw_output=np.asarray(expl.raw_output)[rows],
                   category_codes={c: (codes[rows], cats)
                                   for c, (codes, cats) in expl.category_codes.items()})


def conditional_candidates(expl: GroupedShap, segment: np.ndarray, kinds: dict[str, str],
                           allowed: list[str], cfg: CriteriaConfig, *, source: str,
                           kind: str, min_count: int) -> list[Criterion]:
    """Candidates read from the SHAP values of the accounts *inside* a segment only.

    SHAP values are per account, so restricting them to a segment shows how each column
    acts *there*: a size band that pays off only within some industries is diluted in the
    SHAP of all accounts but plain within those industries. Used for the next ICP
    criterion given the ones chosen so far, and for the second half of an interaction
    exclusion (see the module docstring).

    Parameters
    ----------
    expl : GroupedShap
        Grouped SHAP values on the proposal rows.
    segment : numpy.ndarray of bool
        The rows of ``expl`` inside the segment.
    kinds : dict of str to str
        Kind of each targetable column.
    allowed : list of str
        Columns criteria may name.
    cfg : CriteriaConfig
        The criteria settings.
    source : str
        ``fit_model`` or ``churn_model``.
    kind : {"icp", "anti_icp"}
        Which side's candidates to keep.
    min_count : int
        Fewest accounts (inside the segment) a candidate must cover.

    Returns
    -------
    list of Criterion
        Candidates of ``kind`` without evidence; empty when the segment is too small.
    """
    if int(segment.sum()) < 2 * min_count:
        return []
    sub = _subset(expl, segment)
    return [c for c in propose_candidates(sub, kinds, allowed, cfg, source=source, min_count=min_count)
            if c.kind == kind]


def interaction_candidates(expl: GroupedShap, singles: list[Criterion], kinds: dict[str, str],
                           allowed: list[str], cfg: CriteriaConfig, *, source: str,
                           n_first: int = 6, n_second: int = 2) -> list[Criterion]:
    """Exclusions on two columns: ``A and B`` where B's SHAP is clearly bad *among A's accounts*.

    For the strongest single exclusion A of each of the ``n_first`` strongest columns of one
    model (one per column, so the categories of one column do not crowd the others out), the exclusion
    candidates proposed from the SHAP values of A's accounts alone, on other columns,
    give the second condition (``requires_onprem = True and employees < 200``: on-prem
    hurts only small companies). Selection (step 2) decides whether a pair beats its
    parts; a pair whose first part is also kept is dropped as redundant.

    Parameters
    ----------
    expl : GroupedShap
        Grouped SHAP values of one model on the proposal rows.
    singles : list of Criterion
        Single-column exclusion candidates, strongest first; the first one of
        each column from this ``source`` is a first condition A.
    kinds : dict of str to str
        Kind of each targetable column.
    allowed : list of str
        Columns criteria may name.
    cfg : CriteriaConfig
        The criteria settings.
    source : str
        ``fit_model`` or ``churn_model``.
    n_first : int, default 6
        Strongest first conditions (columns) tried.
    n_second : int, default 2
        Second conditions tried per first condition (a pair is kept only when
        the second part's SHAP is clearly bad among the first part's accounts).

    Returns
    -------
    list of Criterion
        Exclusion candidates with one ``also`` part each.
    """
    n = len(expl.values)
    min_count = _min_count(cfg, n)
    sign = -1 if source == "fit_model" else 1  # the bad direction of this model's SHAP
    out: list[Criterion] = []
    firsts: dict[str, Criterion] = {}  # the strongest candidate of each column, strongest columns first
    for c in singles:
        if c.source == source and not c.also and c.column not in firsts:
            firsts[c.column] = c
    for a in list(firsts.values())[:n_first]:
        inside = a.mask(expl.data).to_numpy(bool)
        others = [c for c in allowed if c != a.column]
        for b in conditional_candidates(expl, inside, kinds, others, cfg, source=source,
                                        kind="anti_icp", min_count=min_count)[:n_second]:
            pair = replace(a, also=(replace(b, kind=a.kind, source=a.source),))
            hit_b = b.mask(expl.data).to_numpy(bool)
            if (int((inside & hit_b).sum()) >= min_count
                    and _interacts(expl.values[b.column].to_numpy(float), inside, hit_b, sign)):
                out.append(pair)
    return out


def _interacts(s: np.ndarray, a: np.ndarray, b: np.ndarray, sign: int) -> bool:
    """Whether condition B is clearly worse *with* A than without it, by B's own SHAP.

    In a model where A and B act additively, B's SHAP is the same whether or not A
    holds, and "A and B" is just two shortfalls in one segment, not an interaction
    (e.g. "not Salesforce and small" when both merely miss ICP bonuses). We require
    B's mean SHAP among A's accounts to be in the bad direction by more than ``tau``
    beyond its mean among the others, and at least twice as bad.
    """
    with_a, without_a = s[a & b], s[~a & b]
    if len(with_a) == 0:
        return False
    inside = float(with_a.mean()) * sign
    outside = float(without_a.mean()) * sign if len(without_a) else 0.0
    return inside - outside > _tau(s) and inside > 2 * max(outside, 0.0)


# ----------------------------------------------------------------------------- ICP interactions
#: Columns searched for ICP interactions: the fit model's largest mean |SHAP| (a column that
#: acts only together with another one still moves the model's output, up and down).
PAIR_COLUMNS = 8


#: Quantiles of a numeric column tried as one-sided cuts by the pair search.
_PAIR_QUANTILES = tuple(np.round(np.linspace(0.1, 0.9, 9), 2))


#: Widths, in steps between :data:`_PAIR_QUANTILES`, of the interior bands the pair search
#: tries on a numeric column (2-5: bands of 20-50% of the accounts). A band interacting with
#: another condition (``150 <= fleet <= 180`` only among on-premise accounts, worse than
#: average elsewhere) is diluted in every one-sided cut: each also holds one side's bad rows.
_PAIR_BAND_WIDTHS = (2, 3, 4, 5)


#: ``source`` of the pair search's interior-band atoms (one side for :func:`_sides`; a pair
#: takes its parts' source from the search, :func:`_make_pair`).
_BAND = "pair_band"


#: Categories per column tried by the pair search (the most frequent ones).
_PAIR_MAX_CATEGORIES = 12


#: Pairs one search hands to selection (largest WRAcc first, one per column pair).
_PAIR_KEEP = 3


#: A pair is an interaction when neither part alone reaches this share of its excess lift.
_PAIR_FLAT = 1 / 3


#: ... and the pair's own lift, on every row, is at least this.
_PAIR_MIN_LIFT = 1.25


#: A category level joins a pair seed's set when its cells with the other part beat the base
#: rate by more than this many binomial standard errors (:func:`_set_seeds`).
_SET_GROW_Z = 1.0


#: Fewest accounts in the cell a pair of category sets is grown from (:func:`_set_seeds`).
_SET_START_MIN = 5


#: ... and significant at this level over the table's cells (Bonferroni, one-sided z test).
_SET_START_ALPHA = 0.05


#: Most pair combinations one search re-fits (:func:`_fit_pair`), best WRAcc first, until
#: ``keep`` column pairs still interact.
_PAIR_MAX_FITS = 8


def _pair_atoms(col: str, x: pd.Series, kind: str, min_k: int, bands: bool = True
                ) -> list[Criterion]:
    """Single conditions on one column tried by the pair search.

    Numeric: one-sided cuts ``<= t`` and ``>= t`` at the deciles (each bound the roundest
    number between the two observed values it separates) and the interior bands between
    two of those cuts :data:`_PAIR_BAND_WIDTHS` deciles apart; a code (at most
    :data:`_MAX_CODE_VALUES` values) also gets one ``t <= x <= t`` per value. Categorical
    and boolean: each of the :data:`_PAIR_MAX_CATEGORIES` most frequent categories with
    at least ``min_k`` accounts (``(missing)`` excluded).
    """
    out: list[Criterion] = []
    if kind == "numeric":
        v = pd.to_numeric(x, errors="coerce").to_numpy(float)
        v = np.sort(v[np.isfinite(v)])
        distinct = np.unique(v)
        if len(distinct) < 2:
            return out
        if len(distinct) <= _MAX_CODE_VALUES:
            cuts = list(range(1, len(distinct)))
        else:
            cuts = sorted({int(np.searchsorted(distinct, np.quantile(v, q), side="right"))
                           for q in _PAIR_QUANTILES} - {0, len(distinct)})
        lows, highs = [], []
        for i in cuts:
            lo, hi = float(distinct[i - 1]), float(distinct[i])
            highs.append(_roundest(lo, hi, include_lo=True, include_hi=False))
            lows.append(_roundest(lo, hi, include_lo=False, include_hi=True))
            out.append(Criterion("icp", col, "<=", high=highs[-1]))
            out.append(Criterion("icp", col, ">=", low=lows[-1]))
        if bands and len(distinct) > _MAX_CODE_VALUES:  # interior bands between the cuts
            for i in range(len(cuts)):
                for j in (i + w for w in _PAIR_BAND_WIDTHS if i + w < len(cuts)):
                    out.append(Criterion("icp", col, "between", low=lows[i], high=highs[j],
                                         source=_BAND))
        if len(distinct) <= _MAX_CODE_VALUES:
            for i in range(1, len(distinct) - 1):  # the end values are one-sided cuts already
                low = _roundest(float(distinct[i - 1]), float(distinct[i]), include_lo=False,
                                include_hi=True)
                high = _roundest(float(distinct[i]), float(distinct[i + 1]), include_lo=True,
                                 include_hi=False)
                out.append(Criterion("icp", col, "between", low=low, high=high))
        return out
    counts = _as_category(x).value_counts()
    names = sorted((str(k) for k in counts.index if k != MISSING and counts[k] >= min_k),
                   key=lambda k: (-int(counts[k]), k))
    return [Criterion("icp", col, "in", values=(k,)) for k in names[:_PAIR_MAX_CATEGORIES]]


def _complement(c: Criterion, rows: pd.DataFrame) -> Criterion | None:
    """The single condition meeting the accounts ``c`` misses among those with a value:
    the other side of a cut, the other categories seen in ``rows`` (``None`` for a
    two-sided band or when nothing is left)."""
    if c.op == "<=":
        return replace(c, op=">", low=c.high, high=None)
    if c.op == ">=":
        return replace(c, op="<", low=None, high=c.low)
    if c.op == "in":
        seen = _as_category(rows[c.column])
        keys = {spelling_key(str(v)) for v in c.values}
        rest = sorted({str(v) for v in seen.unique() if v != MISSING and spelling_key(str(v)) not in keys})
        return replace(c, values=tuple(rest)) if rest else None
    return None


def _best_cell(a: Criterion, b: Criterion, rows: pd.DataFrame, y: np.ndarray,
               min_rows: int) -> tuple[Criterion, Criterion]:
    """Of the cells ``A and B``, ``A and not B``, ``not A and B``, ``not A and not B`` (where
    a complement is one condition), the one with the highest best rate ``y`` among
    ``rows``, with at least ``min_rows`` accounts.

    With compensated main effects the pair's cells are all off average: ``A and B`` is the
    best, but ``not A and not B``, larger and above average too, can have the larger
    WRAcc; the ICP is the best cell.
    """
    cells = []
    for x in (a, _complement(a, rows)):
        for z in (b, _complement(b, rows)):
            if x is None or z is None:
                continue
            m = x.mask(rows).to_numpy(bool) & z.mask(rows).to_numpy(bool)
            k = int(m.sum())
            if k >= min_rows:
                cells.append((float(y[m].mean()), k, x, z))
    if not cells:
        return a, b
    _, _, x, z = max(cells, key=lambda t: (t[0], t[1]))
    return x, z


def _fit_pair(c: Criterion, rows: pd.DataFrame, is_best: np.ndarray, segment: np.ndarray,
              min_k: int, passes: int = 2) -> Criterion:
    """Each part of an ICP pair re-chosen given the other part (and ``segment``).

    The parts' bounds and category sets are fitted as any ICP criterion's
    (:func:`fit_band`, :func:`fit_set`) among the accounts of ``segment`` that meet the
    other part, two passes. Returns the pair with its parts in column order. Callers
    pass a ``segment`` that ignores the exclusions: an exclusion on the pair's own
    columns (the cell ``A and not B`` of a compensated interaction is bad) would leave
    any cut in the excluded range equally good, and the pair's bounds must hold on
    their own (its held-out evidence is on every account).
    """
    parts = list(c.parts)
    for _ in range(passes):
        for i, part in enumerate(parts):
            seg = np.asarray(segment, dtype=bool).copy()
            for j, other in enumerate(parts):
                if j != i:
                    seg &= other.mask(rows).to_numpy(bool)
            parts[i] = fit_set(fit_band(part, rows, is_best, seg, min_k), rows, is_best, seg,
                               min_k)
    return _make_pair(parts, c)


def _make_pair(parts: list[Criterion], like: Criterion) -> Criterion:
    """One criterion requiring every part, parts in column order (a canonical form, so the
    same pair found twice has the same columns and key)."""
    parts = sorted((replace(p, kind=like.kind, source=like.source, also=(),
                            evidence={}) for p in parts), key=lambda p: p.column)
    return replace(parts[0], also=tuple(parts[1:]))


def icp_pair_candidates(expl: GroupedShap, kinds: dict[str, str], allowed: list[str],
                        rows: pd.DataFrame, is_best: np.ndarray, clear: np.ndarray,
                        cfg: CriteriaConfig, *, n_cols: int = PAIR_COLUMNS,
                        keep: int = _PAIR_KEEP, bands: bool = True
                        ) -> tuple[list[Criterion], int]:
    """ICP candidates ``A and B`` whose parts are flat alone (pure interactions).

    The greedy ICP selection adds one column at a time, each raising the best rate on its
    own within the segment so far; when A helps only where B holds and hurts elsewhere
    (the main effects cancel), neither A nor B ever passes first. This search proposes
    the pair as one criterion:

    * columns: the ``n_cols`` allowed columns with the largest mean |SHAP| of the fit
      model (``expl``): a column acting only with another one moves the model's output
      up in some accounts and down in others;
    * each pair of those columns: every combination of their single conditions
      (:func:`_pair_atoms`) is scored by WRAcc (coverage x (best rate - base rate)) on
      ``rows`` within ``clear`` (no exclusion), with at least ``min_support`` accounts
      inside and outside. Only *interactions* count: on all of ``rows`` (the population,
      whatever the exclusions), the pair's lift is at least :data:`_PAIR_MIN_LIFT` and
      neither part alone reaches :data:`_PAIR_FLAT` of the pair's excess lift (parts that
      also act alone are found by the greedy one at a time). The best combination per
      column pair is kept;
    * the best combination per column pair and per side of each part (:func:`_sides`)
      is scored; in WRAcc order, up to :data:`_PAIR_MAX_FITS` of them get each part's
      bounds or category set re-chosen given the other part (:func:`_fit_pair`), until
      ``keep`` column pairs still interact (one pair per column pair).

    ``rows`` should be rows the selection will not test on (the model's training rows),
    so the selection's test of a pair is not biased by its search. A pair whose re-fitted
    parts act alone is dropped (:func:`_still_interacts`).

    Parameters
    ----------
    expl : GroupedShap
        SHAP values of the fit model per business column (ranks the columns).
    kinds : dict of str to str
        Kind of each column (``numeric``, ``categorical``, ``boolean``).
    allowed : list of str
        Columns that may appear in a criterion (targetable, not set aside).
    rows : pandas.DataFrame
        Coerced accounts the search runs on (the model's training rows). Not modified.
    is_best : numpy.ndarray of bool
        Best-cohort membership of each row, shape ``(len(rows),)``.
    clear : numpy.ndarray of bool
        Rows no exclusion removes, shape ``(len(rows),)``.
    cfg : CriteriaConfig
        ``min_support_share`` sets the fewest accounts inside and outside a pair.
    n_cols : int, default PAIR_COLUMNS
        Columns with the largest mean |SHAP| that are paired.
    keep : int, default _PAIR_KEEP
        Most column pairs returned (each its best surviving pair, by WRAcc).
    bands : bool, default True
        Also try interior bands of numeric columns (:func:`_pair_atoms`).

    Returns
    -------
    pairs : list of Criterion
        ICP criteria with one ``also`` part, source ``fit_model``, best first.
    n_searched : int
        Column pairs searched (each one hypothesis, for the multiple-testing correction).
    """
    y = np.asarray(is_best, dtype=bool)
    clear = np.asarray(clear, dtype=bool)
    n = int(clear.sum())
    min_k = _min_count(cfg, n)
    if n < 4 * min_k or not 0 < y[clear].sum() < n:
        return [], 0
    imp = expl.values[[c for c in expl.values.columns if c in allowed]].abs().mean()
    cols = sorted(imp.index, key=lambda c: (-float(imp[c]), c))[:n_cols]
    yc, ya = y[clear].astype(float), y.astype(float)
    base, base_all = float(yc.mean()), float(ya.mean())
    atoms: dict[str, _Atoms] = {}
    for col in cols:
        cand = _pair_atoms(col, rows[col][clear], kinds.get(col, "categorical"), min_k, bands)
        if cand:
            atoms[col] = _Atoms(cand, rows, ya, base_all)
    scored: list[tuple[float, str, str, Criterion, Criterion]] = []
    searched = 0
    names = [c for c in cols if c in atoms]
    for i, ca in enumerate(names):
        a = atoms[ca]
        a_c, a_ex = a.cands, a.alone
        for cb in names[i + 1:]:
            searched += 1
            b = atoms[cb]
            b_c, b_ex = b.cands, b.alone
            cnt, pos = a.cross(b, clear, yc)
            cnt_all, pos_all = a.cross(b, None, ya)
            with np.errstate(invalid="ignore", divide="ignore"):
                ex = pos / cnt / base - 1
                ex_all = pos_all / cnt_all / base_all - 1
            wracc = (pos - base * cnt) / n
            ok = ((cnt >= min_k) & (n - cnt >= min_k) & (ex > 0)
                  & (ex_all >= _PAIR_MIN_LIFT - 1) & (a_ex[:, None] < _PAIR_FLAT * ex_all)
                  & (b_ex[None, :] < _PAIR_FLAT * ex_all))
            # two category sets: the same search with each column's levels grown into the set
            # that pays off given the other (a 3-of-8 set x a 3-of-8 set is nine small cells)
            if _is_levels(a_c) and _is_levels(b_c):
                scored += [(sc, ca, cb, pa, pb) for sc, pa, pb in _set_seeds(
                    a, b, pos, cnt, ya, (n, min_k, base, base_all))]
            if not ok.any():
                continue
            w = np.where(ok, wracc, -np.inf)
            for ga in _sides(a_c):
                for gb in _sides(b_c):
                    sub = w[np.ix_(ga, gb)]
                    if np.isfinite(sub).any():
                        ia, ib = divmod(int(np.argmax(sub)), sub.shape[1])
                        scored.append((float(sub[ia, ib]), ca, cb, a_c[ga[ia]], b_c[gb[ib]]))
    scored.sort(key=lambda t: (-t[0], t[1], t[2], t[3].describe(), t[4].describe()))
    out: dict[tuple[str, ...], Criterion] = {}
    every = np.ones(len(rows), dtype=bool)
    fits = 0
    for _, ca, cb, a, b in scored:
        if len(out) >= keep or fits >= _PAIR_MAX_FITS:
            break
        if (ca, cb) in out or tuple(sorted((ca, cb))) in out:
            continue
        fits += 1
        # fit the parts, take the best cell of the 2x2 they form, fit again
        pair = _fit_pair(_make_pair([a, b], Criterion("icp", a.column, "in")), rows, y, every,
                         min_k)
        a, b = _best_cell(*pair.parts, rows, y, min_k)
        pair = _fit_pair(_make_pair([a, b], pair), rows, y, every, min_k)
        if _still_interacts(pair, rows, ya, base_all):
            out[tuple(pair.columns)] = pair
    return list({c.key: c for c in out.values()}.values()), searched


class _Atoms:
    """The pair search's atoms of one column (:func:`_pair_atoms`), stored as the distinct
    membership patterns of the rows.

    A row's membership in the column's atoms (a few dozen cuts, bands or levels) takes one
    of at most a few dozen patterns (the column's decile bins, its levels), so the counts of
    every atom pair of two columns come from the small cross-table of the two columns'
    pattern codes (:meth:`cross`, one ``bincount`` over the rows) instead of a product of
    (atoms x rows) masks: the same integer counts, exactly, at a cost linear in the rows.

    Parameters
    ----------
    cands : list of Criterion
        The atoms.
    rows : pandas.DataFrame
        Every row of the search (masks are evaluated once, here).
    y : numpy.ndarray of float
        Best cohort (0/1) of every row.
    base : float
        Best rate of every row (for :attr:`alone`).

    Attributes
    ----------
    codes : numpy.ndarray of int, shape (rows,)
        Each row's pattern.
    patterns : numpy.ndarray of float, shape (patterns, atoms)
        1.0 where the pattern meets the atom.
    alone : numpy.ndarray of float, shape (atoms,)
        Excess lift of each atom alone on every row.
    """

    def __init__(self, cands: list[Criterion], rows: pd.DataFrame, y: np.ndarray,
                 base: float) -> None:
        masks = np.stack([c.mask(rows).to_numpy(bool) for c in cands], axis=1)
        packed = np.packbits(masks, axis=1)
        keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, self.codes = np.unique(keys, return_index=True, return_inverse=True)
        self.cands = cands
        self.patterns = masks[first].astype(float)
        k = len(first)
        cnt = self.patterns.T @ np.bincount(self.codes, minlength=k)
        hit = self.patterns.T @ np.bincount(self.codes, weights=y, minlength=k)
        self.alone = hit / np.maximum(cnt, 1) / base - 1

    def cross(self, other: _Atoms, rows: np.ndarray | None, y: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Accounts and best accounts (``y`` summed) of every pair (atom of self, atom of
        ``other``), among ``rows`` (a boolean mask; None: every row; ``y`` is then of those
        rows), each of shape (atoms of self, atoms of other)."""
        ia, ib = self.codes, other.codes
        if rows is not None:
            ia, ib = ia[rows], ib[rows]
        ka, kb = len(self.patterns), len(other.patterns)
        cell = ia * kb + ib
        cnt = np.bincount(cell, minlength=ka * kb).reshape(ka, kb).astype(float)
        pos = np.bincount(cell, weights=y, minlength=ka * kb).reshape(ka, kb)
        pa, pb = self.patterns, other.patterns
        return pa.T @ cnt @ pb, pa.T @ pos @ pb

    def union(self, pick: np.ndarray) -> np.ndarray:
        """Rows meeting any of the atoms ``pick`` (boolean over the atoms), shape (rows,)."""
        return (self.patterns[:, pick].max(1) > 0)[self.codes]


def _is_levels(atoms: list[Criterion]) -> bool:
    """Whether the pair search's atoms of a column are its category levels, at least three
    (a set of them is a condition of its own; two levels are a value and its complement)."""
    return len(atoms) >= 3 and all(c.op == "in" and len(c.values) == 1 for c in atoms)


def _set_seeds(a: _Atoms, b: _Atoms, pos: np.ndarray,
               cnt: np.ndarray, y: np.ndarray, limits: tuple[int, int, float, float]
               ) -> list[tuple[float, Criterion, Criterion]]:
    """Pair seeds of two category columns whose parts are sets of levels, for
    :func:`icp_pair_candidates`.

    The single-cell search pairs one level with one level: a planted set of 3 of 8 levels
    crossed with another 3 of 8 is nine small cells, each of which a chance pair of wide
    cuts outscores by WRAcc, so the fold searches of :func:`crossfit_pairs` miss it. Here
    the most significant cell (largest z-score of its best rate against the base rate,
    among cells of at least :data:`_SET_START_MIN` accounts, and significant at
    :data:`_SET_START_ALPHA` over those cells, Bonferroni: else no seed) is grown: the
    other column's
    part becomes the levels whose cells with it beat the base rate by more than
    :data:`_SET_GROW_Z` binomial standard errors (WRAcc adds up over disjoint levels; a
    level taken for any positive excess would add the noise of half the levels of every
    chance pair), then each part is re-grown given the other, twice (alternations on the
    2-D contingency table: ``pos`` best accounts and ``cnt`` accounts per cell of the
    searched rows). Grown from one cell, not from every level, and that cell chosen by
    significance, not WRAcc: in a compensated interaction the large ``not A and not B``
    block is mildly above average too, and with skewed level frequencies its biggest cell
    has the largest WRAcc; grown from it, the seed is that block. The seed, as ``(WRAcc,
    part of a, part of b)``, is returned when neither part is every level, it
    keeps ``min_k`` accounts inside and outside, and it is an interaction on every row
    (lift >= :data:`_PAIR_MIN_LIFT`, each part alone below :data:`_PAIR_FLAT` of its
    excess), as the single cells are judged. (Grown against a numeric cut, the sets
    favoured the large ``not A and not B`` cell of a compensated band interaction, which
    then crowded out the band pair the single cells find: numeric parts keep the single
    cells.)

    ``a``, ``b``: a column's atoms, one level each (:func:`_is_levels`); ``pos``, ``cnt``: shape (atoms of a, atoms of b); ``y``:
    best cohort on every row (float); ``limits``: (searched rows, fewest accounts inside
    and outside, base rate on the searched rows, base rate on every row).
    """
    n, min_k, base, base_all = limits
    a_c, b_c = a.cands, b.cands
    resid, var = pos - base * cnt, cnt * base * (1 - base)

    def grow(r: np.ndarray, v: np.ndarray) -> np.ndarray:
        return r > _SET_GROW_Z * np.sqrt(v)

    def as_part(cands: list[Criterion], pick: np.ndarray) -> Criterion:
        vals = sorted(v for c, p in zip(cands, pick, strict=True) if p for v in c.values)
        return replace(cands[0], values=tuple(vals))

    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(cnt >= _SET_START_MIN, resid / np.sqrt(var), -np.inf)
    cells = int(np.isfinite(z).sum())
    # the start must stand out among the cells it was picked from (Bonferroni, one-sided)
    if not cells or z.max() < stats.norm.isf(_SET_START_ALPHA / cells):
        return []
    sa = np.arange(len(a_c)) == int(np.argmax(z)) // z.shape[1]  # the start cell's level of a
    for _ in range(2):
        sb = grow(resid[sa].sum(0), var[sa].sum(0))
        sa = grow(resid[:, sb].sum(1), var[:, sb].sum(1))
    if not sa.any() or not sb.any() or sa.all() or sb.all():
        return []
    ma, mb = a.union(sa), b.union(sb)
    both = ma & mb
    score = float(resid[np.ix_(sa, sb)].sum()) / n
    if not min_k <= both.sum() <= len(both) - min_k or score <= 0:
        return []
    if not _flat_parts(both, [ma, mb], y, base_all):
        return []
    return [(score, as_part(a_c, sa), as_part(b_c, sb))]


def _sides(atoms: list[Criterion]) -> list[list[int]]:
    """The pair search's atoms of one column grouped by side: all ``<=`` cuts, all ``>=``
    cuts, all interior bands, and each category or code value alone (indices into ``atoms``). The search keeps
    the best combination per (side, side) of a column pair, so a combination that its
    re-fit turns into a main effect (:func:`_still_interacts`) does not hide the true
    interaction on the same two columns (``region = X and headcount >= t`` beside
    ``region = Y and headcount <= t``)."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(atoms):
        side = c.op if c.op in ("<=", ">=") else (_BAND if c.source == _BAND else c.key)
        groups.setdefault(side, []).append(i)
    return list(groups.values())


def _still_interacts(pair: Criterion, rows: pd.DataFrame, y: np.ndarray, base: float) -> bool:
    """Whether a pair whose parts were re-fitted is still an interaction on ``rows``: lift
    at least :data:`_PAIR_MIN_LIFT`, and neither part alone reaching :data:`_PAIR_FLAT` of
    its excess lift. Fitting a part given the other can turn it into a main effect (a
    size band that helps everywhere); such a pair would stand for a column the greedy
    finds alone, and a fold that picks it would disagree with the folds that pick the
    column itself."""
    return _flat_parts(pair.mask(rows).to_numpy(bool),
                       [part.mask(rows).to_numpy(bool) for part in pair.parts], y, base)


def _flat_parts(both: np.ndarray, parts: list[np.ndarray], y: np.ndarray, base: float) -> bool:
    """Whether the rows ``both`` (masks) are an interaction of ``parts``: lift at least
    :data:`_PAIR_MIN_LIFT` against ``base`` (best rate ``y`` of every row), and no part alone
    reaching :data:`_PAIR_FLAT` of its excess lift."""
    def excess(m: np.ndarray) -> float:
        return float(y[m].mean() / base - 1) if m.any() and base > 0 else 0.0

    ex = excess(both)
    return ex >= _PAIR_MIN_LIFT - 1 and all(excess(m) < _PAIR_FLAT * ex for m in parts)


#: Fewest rows for which the cross-fitted pair search also tries interior numeric bands
#: (:data:`_PAIR_BAND_WIDTHS`). Each band multiplies the shapes a column pair can take: on a
#: null table of 1,193 accounts (null_small seed 6, ~500 searched rows) the bands let a
#: chance pair of cuts through, even past the search's own out-of-fold test, and at that
#: size a band of 20% is ~100 accounts, too few for a pair inside it to be told from chance
#: anyway (dev interaction draws 54, 59, 60, 68, 1,000-1,200 customers, are missed with or
#: without bands). From 1,000 rows instead (about 2,300 customers on the three-way split,
#: whose search sees the best and worst cohorts of train + selection), dev interaction draw 83
#: (2,408 customers, a 150-160 band) was found (F1 0 -> 0.93) with 21 other dev interaction
#: draws and the nulls unchanged, but the reporting run lost a planted 3-condition
#: conjunctive ICP at 2,409 customers (F1 1.00 -> no ICP): not adopted.
PAIR_BANDS_FROM = 2_000


#: Folds of the cross-fitted pair search (:func:`crossfit_pairs`).
PAIR_FOLDS = 5


class PairSearch(NamedTuple):
    """Result of :func:`crossfit_pairs`.

    Parameters
    ----------
    pairs : list of Criterion
        The pairs found on all of the rows, best (by WRAcc) first.
    p_oof : list of float
        Each pair's out-of-fold p-value with its column pair fixed (a selection gate at
        plain ``alpha``: the column pair was chosen on every row), same order.
    searched : int
        Column pairs searched (hypotheses, for the multiple-testing correction).
    p_top : float
        Out-of-fold p-value of the *search itself*: each fold's own top pair judged its
        left-out rows, so no row judged a choice it took part in; valid at plain
        ``alpha`` whatever the number of column pairs searched. 1.0 unless ``pairs[0]``
        is on the column pair most folds put first.
    """

    pairs: list[Criterion]
    p_oof: list[float]
    searched: int
    p_top: float


def crossfit_pairs(expl: GroupedShap, kinds: dict[str, str], allowed: list[str],
                   rows: pd.DataFrame, is_best: np.ndarray, clear: np.ndarray,
                   cfg: CriteriaConfig, *, n_folds: int = PAIR_FOLDS, seed: int = 0
                   ) -> PairSearch:
    """:func:`icp_pair_candidates` on all of ``rows``, each pair judged out of fold.

    A pure interaction covers a few percent of the accounts; on the selection rows of a
    1.5k-4k customer table (a few hundred) the pair found on the training rows holds a
    dozen or two of them, too few for the greedy selection's test to pass, although the
    search itself found it. Here the search and its test share the rows by K-fold
    cross-fitting, so every row serves as evidence once:

    * the pairs: :func:`icp_pair_candidates` on every row of ``rows`` (the returned
      criteria, with their cuts);
    * for each of ``n_folds`` folds (stratified by ``is_best``, seeded): the same search
      on the other folds;
    * the search's own test (``p_top``): each fold's top pair, whatever its columns,
      decides its left-out rows' membership (rows of a fold that found none count as
      outside); one-sided Fisher test that the pooled members within ``clear`` reach
      the best cohort more often than the other rows within ``clear``. No row judges a
      choice (of columns, shapes or cuts) it took part in, so this is one honest
      hypothesis however many column pairs were searched: the cross-validated
      estimate of the search, as for any learner (the reported pair is the search on
      every row, and must be on the column pair a majority of folds put first, or
      ``p_top`` is 1);
    * each final pair's own out-of-fold p-value (``p_oof``): where a fold's search
      returns a pair on the same two columns, that fold's pair (its own cuts) decides the
      left-out rows, tested as above; 1 unless a majority of the folds found it. Its
      column pair was chosen on every row, so this is a selection gate at plain
      ``alpha``; the confirmation on held-out (or outer cross-fitted) rows corrects for
      every candidate and every column pair searched.

    The column ranking (mean |SHAP| of ``expl``) is shared by the folds: it only decides
    which columns are paired, not where the pairs cut. So is the choice of shapes: interior
    numeric bands are tried when ``rows`` has at least :data:`PAIR_BANDS_FROM` rows.

    Parameters
    ----------
    expl, kinds, allowed
        As for :func:`icp_pair_candidates`.
    rows : pandas.DataFrame
        Coerced accounts to search and judge on (not modified).
    is_best : numpy.ndarray of bool
        Best-cohort membership per row, shape ``(len(rows),)``.
    clear : numpy.ndarray of bool
        Rows no exclusion removes, shape ``(len(rows),)``.
    cfg : CriteriaConfig
        As for :func:`icp_pair_candidates`; ``alpha`` is not used here.
    n_folds : int, default PAIR_FOLDS
        Folds of the cross-fitting (fewer when a cohort has fewer rows).
    seed : int, default 0
        Seed of the fold assignment.

    Returns
    -------
    PairSearch
    """
    from sklearn.model_selection import StratifiedKFold

    from icpml.criteria.evidence import _fisher_greater

    y = np.asarray(is_best, dtype=bool)
    clear = np.asarray(clear, dtype=bool)
    # one choice for the search and its folds (a fold searching other shapes would not judge it)
    bands = len(rows) >= PAIR_BANDS_FROM
    pairs, searched = icp_pair_candidates(expl, kinds, allowed, rows, y, clear, cfg, bands=bands)
    k = min(n_folds, int(y.sum()), int((~y).sum()))
    if not pairs or k < 2:
        return PairSearch(pairs, [1.0] * len(pairs), searched, 1.0)
    oof = {tuple(c.columns): np.zeros(len(rows), dtype=bool) for c in pairs}
    hits = dict.fromkeys(oof, 0)
    top = np.zeros(len(rows), dtype=bool)
    firsts: list[tuple[str, ...]] = []
    kf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for tr, te in kf.split(np.zeros(len(y)), y):
        found, _ = icp_pair_candidates(expl, kinds, allowed, rows.iloc[tr], y[tr], clear[tr], cfg,
                                       bands=bands)
        for j, c in enumerate(found):
            cols = tuple(c.columns)
            if j and cols not in oof:
                continue
            m = c.mask(rows.iloc[te]).to_numpy(bool)
            if j == 0:  # the fold's own top pair, whatever its columns
                firsts.append(cols)
                top[te] = m
            if cols in oof:
                hits[cols] += 1
                oof[cols][te] = m

    def p_of(m: np.ndarray) -> float:
        inside, outside = clear & m, clear & ~m
        return _fisher_greater(int(y[inside].sum()), int(inside.sum()), int(y[outside].sum()),
                               int(outside.sum()))

    p_oof = [p_of(oof[tuple(c.columns)]) if 2 * hits[tuple(c.columns)] > k else 1.0
             for c in pairs]
    p_top = p_of(top) if 2 * firsts.count(tuple(pairs[0].columns)) > k else 1.0
    return PairSearch(pairs, p_oof, searched, p_top)
