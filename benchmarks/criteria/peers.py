"""Peer methods, each turned into one ICP segment and one anti-ICP segment.

Every peer gets the same input as icpml's fit model: the targetable columns icpml's
screen kept, on the non-held-out accounts (train + selection) of the best and
worst cohorts, with target ``is_best``. Encoding (:class:`Encoder`, fitted on those
rows): each categorical or yes/no column one-hot (missing is its own category
``(missing)``; categories seen fewer than 5 times get no column), each numeric
column median-filled plus a ``<col> is missing`` indicator when it has missing
values. pysubgroup reads the same information natively (:func:`_subgroup_frame`):
categories as text (equality selectors = one-hot), numbers with their gaps left
missing (pysubgroup adds an ``is NaN`` selector = the missing indicator).

How each output becomes a segment (``ICP`` / ``anti``) and what counts as the
method *claiming* something on its own default threshold (used on null data):

* **pysubgroup**: beam search (width 20, depth 3, 10 results), WRAcc quality,
  numeric cut points at 10 equal-frequency bins as one-sided ``<`` / ``>=``
  selectors (two of them make a band). ICP = top subgroup for target best; anti =
  top subgroup for target worst. Claims when its top subgroup has WRAcc > 0
  (pysubgroup's default ``min_quality`` is -inf, so it always returns subgroups).
* **RuleFit** (imodels defaults: 100 trees of ~4 leaves, <= 30 terms, L1 strength
  chosen by CV, linear terms included). ICP = the rule with a positive coefficient
  and the largest Friedman-Popescu importance ``|coef| * sqrt(s (1 - s))``; anti =
  the same among negative coefficients. Claims when any rule has a nonzero coefficient.
* **SkopeRules** (imodels defaults: precision >= 0.5, recall >= 0.01 out of bag).
  ICP = its top rule (skope ranks rules by out-of-bag F1) for target best; anti = its
  top rule for target worst. Claims when either model keeps any rule.
* **depth-3 tree** (sklearn ``DecisionTreeClassifier``, leaves >= 3% of rows). ICP =
  the leaf with the highest best rate; anti = the leaf with the lowest. Claims when
  the tree splits at all.

For every method the targeted *ICP segment* is ``ICP and not anti`` (icpml's
``icp_mask`` is already exactly that).
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MISSING = "(missing)"
#: categories seen fewer times than this on the training rows get no one-hot column
MIN_CATEGORY_COUNT = 5
#: a leaf (tree) must hold at least this share of the training rows
TREE_MIN_LEAF_SHARE = 0.03


# ----------------------------------------------------------------------------- segments
@dataclass
class Segment:
    """A readable rule and a function giving its members on a validated account table."""

    text: str
    columns: frozenset[str]
    mask: Callable[[pd.DataFrame], np.ndarray]


@dataclass
class MethodOutput:
    """What one method found on one run."""

    icp: Segment | None = None
    anti: Segment | None = None
    claims: bool = False
    seconds: float = 0.0
    error: str | None = None
    extra: dict = field(default_factory=dict)

    def icp_segment(self, df: pd.DataFrame) -> np.ndarray:
        """Members of ``ICP and not anti`` (all False when there is no ICP)."""
        if self.icp is None:
            return np.zeros(len(df), dtype=bool)
        return self.icp.mask(df) & ~self.anti_segment(df)

    def anti_segment(self, df: pd.DataFrame) -> np.ndarray:
        """Members of the anti-ICP (all False when there is none)."""
        if self.anti is None:
            return np.zeros(len(df), dtype=bool)
        return self.anti.mask(df)


# ----------------------------------------------------------------------------- encoding
def _as_text(s: pd.Series) -> pd.Series:
    """Category values as text, missing as ``(missing)`` (booleans read True / False)."""
    if pd.api.types.is_bool_dtype(s):
        s = s.astype("boolean")
    return s.astype("string").fillna(MISSING).astype(object)


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"


@dataclass(frozen=True)
class Feature:
    """One encoded column: its business column and how it reads in a rule."""

    column: str
    kind: str  # "numeric", "missing" or "onehot"
    value: str = ""

    def describe(self, op: str, thr: float) -> str:
        """Words for ``feature op thr`` (``op`` is ``<=``, ``<``, ``>`` or ``>=``)."""
        if self.kind == "numeric":
            return f"{self.column} {op} {_fmt(thr)}"
        # a 0/1 column: which of the two values does the condition keep?
        on, off = bool(_holds(np.array(1.0), op, thr)), bool(_holds(np.array(0.0), op, thr))
        if on == off:
            return f"({self.column}: {'any' if on else 'none'})"
        if self.kind == "missing":
            return f"{self.column} is {'missing' if on else 'known'}"
        return f"{self.column} {'=' if on else '!='} {self.value}"


class Encoder:
    """One-hot categories, median-filled numbers + missing indicators (see module docstring)."""

    def __init__(self, kinds: dict[str, str]):
        self.kinds = dict(kinds)
        self.features: list[Feature] = []
        self.medians: dict[str, float] = {}

    def fit(self, df: pd.DataFrame) -> Encoder:
        self.features = []
        for c, kind in self.kinds.items():
            if kind == "numeric":
                x = pd.to_numeric(df[c], errors="coerce").astype(float)
                med = x.median()
                self.medians[c] = float(med) if math.isfinite(med) else 0.0
                self.features.append(Feature(c, "numeric"))
                if x.isna().any():
                    self.features.append(Feature(c, "missing"))
            else:
                counts = _as_text(df[c]).value_counts()
                for v in sorted(counts.index[counts >= MIN_CATEGORY_COUNT]):
                    self.features.append(Feature(c, "onehot", str(v)))
        return self

    @property
    def names(self) -> list[str]:
        """Placeholder names ``X_0 .. X_k`` (safe in rule strings)."""
        return [f"X_{i}" for i in range(len(self.features))]

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        cols = []
        text = {c: _as_text(df[c]) for c, k in self.kinds.items() if k != "numeric"}
        for f in self.features:
            if f.kind == "numeric":
                x = pd.to_numeric(df[f.column], errors="coerce").astype(float)
                cols.append(x.fillna(self.medians[f.column]).to_numpy())
            elif f.kind == "missing":
                cols.append(df[f.column].isna().to_numpy(float))
            else:
                cols.append((text[f.column] == f.value).to_numpy(float))
        return np.column_stack(cols) if cols else np.zeros((len(df), 0))


# ----------------------------------------------------------------------------- conjunctions
_TERM = re.compile(r"^\s*X_(\d+)\s*(<=|<|>=|>|==)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Condition:
    feature: int
    op: str
    thr: float


def parse_rule(rule: str) -> list[Condition]:
    """``"X_3 <= 0.5 and X_7 > 120"`` -> conditions (imodels' placeholder syntax)."""
    out = []
    for term in rule.split(" and "):
        m = _TERM.match(term)
        if not m:
            raise ValueError(f"cannot parse rule term {term!r}")
        out.append(Condition(int(m.group(1)), m.group(2), float(m.group(3))))
    return out


def _holds(x: np.ndarray, op: str, thr: float) -> np.ndarray:
    return {"<=": x <= thr, "<": x < thr, ">": x > thr, ">=": x >= thr, "==": x == thr}[op]


def conjunction_segment(conds: list[Condition], enc: Encoder) -> Segment:
    """A :class:`Segment` for a conjunction over encoded features."""
    feats = [enc.features[c.feature] for c in conds]
    text = " AND ".join(f.describe(c.op, c.thr) for f, c in zip(feats, conds, strict=True))

    def mask(df: pd.DataFrame) -> np.ndarray:
        X = enc.transform(df)
        m = np.ones(len(df), dtype=bool)
        for c in conds:
            m &= _holds(X[:, c.feature], c.op, c.thr)
        return m

    return Segment(text or "(everyone)", frozenset(f.column for f in feats), mask)


# ----------------------------------------------------------------------------- peers
def _pysubgroup_frame(df: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Categories as text (missing = ``(missing)``), numbers as float with NaN kept."""
    out = {}
    for c, k in kinds.items():
        out[c] = (pd.to_numeric(df[c], errors="coerce").astype(float).to_numpy() if k == "numeric"
                  else _as_text(df[c]).to_numpy(dtype=object))
    return pd.DataFrame(out, index=range(len(df)))


def _top_subgroup(frame: pd.DataFrame, target: np.ndarray):
    import pysubgroup as ps

    data = frame.copy()
    data["__target"] = target
    selectors = ps.create_selectors(data, nbins=10, intervals_only=False, ignore=["__target"])
    task = ps.SubgroupDiscoveryTask(data, ps.BinaryTarget("__target", True), selectors,
                                    qf=ps.WRAccQF(), result_set_size=10, depth=3)
    result = ps.BeamSearch(beam_width=20).execute(task)
    if not result.results:
        return None, float("nan")
    quality, sg = max(((q, s) for q, s, *_ in result.results), key=lambda t: t[0])
    return sg, float(quality)


def _subgroup_segment(sg, kinds: dict[str, str]) -> Segment:
    cols = frozenset(sel.attribute_name for sel in sg.selectors)

    def mask(df: pd.DataFrame) -> np.ndarray:
        return np.asarray(sg.covers(_pysubgroup_frame(df, kinds)), dtype=bool)

    return Segment(str(sg), cols, mask)


def run_pysubgroup(train: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
                   seed: int) -> MethodOutput:
    """Beam search, WRAcc: top subgroup for best (ICP) and for worst (anti)."""
    frame = _pysubgroup_frame(train, kinds)
    icp, q_icp = _top_subgroup(frame, y)
    anti, q_anti = _top_subgroup(frame, ~y)
    return MethodOutput(
        icp=_subgroup_segment(icp, kinds) if icp is not None else None,
        anti=_subgroup_segment(anti, kinds) if anti is not None else None,
        claims=bool(q_icp > 0 or q_anti > 0),
        extra={"wracc_train": {"icp": q_icp, "anti": q_anti}},
    )


def run_rulefit(train: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
                seed: int) -> MethodOutput:
    """RuleFit: most important positive rule (ICP) and negative rule (anti)."""
    from imodels import RuleFitClassifier

    enc = Encoder(kinds).fit(train)
    model = RuleFitClassifier(random_state=seed)
    model.fit(enc.transform(train), y.astype(int), feature_names=enc.names)
    n_lin = len(model.coef) - len(model.rules_without_feature_names_)
    rules = []
    for r, coef in zip(model.rules_without_feature_names_, model.coef[n_lin:], strict=True):
        if coef != 0:
            imp = abs(coef) * math.sqrt(r.support * (1 - r.support))
            rules.append((imp, float(coef), r.rule))

    def pick(sign: int) -> Segment | None:
        cands = [t for t in rules if np.sign(t[1]) == sign]
        if not cands:
            return None
        return conjunction_segment(parse_rule(max(cands)[2]), enc)

    return MethodOutput(icp=pick(1), anti=pick(-1), claims=bool(rules),
                        extra={"n_rules": len(rules)})


def _skope_top(X: np.ndarray, y: np.ndarray, enc: Encoder, seed: int) -> tuple[Segment | None, int]:
    from imodels import SkopeRulesClassifier

    model = SkopeRulesClassifier(random_state=seed)
    model.fit(X, y.astype(int), feature_names=enc.names)
    rules = model.rules_without_feature_names_
    if not rules:
        return None, 0
    return conjunction_segment(parse_rule(rules[0].rule), enc), len(rules)


def run_skope(train: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
              seed: int) -> MethodOutput:
    """SkopeRules: top rule (out-of-bag F1) for best (ICP) and for worst (anti)."""
    enc = Encoder(kinds).fit(train)
    X = enc.transform(train)
    icp, n_icp = _skope_top(X, y, enc, seed)
    anti, n_anti = _skope_top(X, ~y, enc, seed)
    return MethodOutput(icp=icp, anti=anti, claims=bool(n_icp or n_anti),
                        extra={"n_rules": {"icp": n_icp, "anti": n_anti}})


def _leaf_path(tree, leaf: int) -> list[Condition]:
    """Conditions from the root to ``leaf`` of a fitted sklearn tree."""
    t = tree.tree_
    parent = {}
    for node in range(t.node_count):
        for child, op in ((t.children_left[node], "<="), (t.children_right[node], ">")):
            if child != -1:
                parent[child] = (node, op)
    conds = []
    node = leaf
    while node in parent:
        up, op = parent[node]
        conds.append(Condition(int(t.feature[up]), op, float(t.threshold[up])))
        node = up
    return conds[::-1]


def run_tree(train: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
             seed: int) -> MethodOutput:
    """Depth-3 tree: purest leaf for best (ICP) and for worst (anti), each >= 3% support."""
    from sklearn.tree import DecisionTreeClassifier

    enc = Encoder(kinds).fit(train)
    X = enc.transform(train)
    min_leaf = max(5, math.ceil(TREE_MIN_LEAF_SHARE * len(y)))
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=min_leaf, random_state=seed)
    tree.fit(X, y)
    if tree.get_n_leaves() < 2:
        return MethodOutput(claims=False)
    rate = pd.Series(y.astype(float)).groupby(tree.apply(X)).mean()
    best_leaf, worst_leaf = int(rate.idxmax()), int(rate.idxmin())

    def leaf_segment(leaf: int) -> Segment:
        seg = conjunction_segment(_leaf_path(tree, leaf), enc)
        return Segment(seg.text, seg.columns,
                       lambda df: tree.apply(enc.transform(df)) == leaf)

    return MethodOutput(icp=leaf_segment(best_leaf), anti=leaf_segment(worst_leaf), claims=True)


#: peer name -> function(train rows, is_best, kinds, seed)
PEERS: dict[str, Callable[[pd.DataFrame, np.ndarray, dict[str, str], int], MethodOutput]] = {
    "pysubgroup": run_pysubgroup,
    "RuleFit": run_rulefit,
    "SkopeRules": run_skope,
    "depth-3 tree": run_tree,
}


def run_peer(name: str, train: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
             seed: int) -> MethodOutput:
    """Run one peer, timed; any exception becomes ``error`` (one line) instead of a crash."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = PEERS[name](train, np.asarray(y, dtype=bool), kinds, seed)
    except Exception as err:  # noqa: BLE001 - a failing peer must not stop the benchmark
        msg = f"{type(err).__name__}: {err}".splitlines()[0][:160]
        out = MethodOutput(error=msg)
    out.seconds = time.perf_counter() - t0
    return out
