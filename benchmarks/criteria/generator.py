"""Procedural scenario generator: every (family, seed) draws its own planted truth.

A *draw* is built in two steps:

1. :func:`draw_spec` (family, seed) -> :class:`Spec`: the column schema (names, kinds,
   marginal distributions, correlations), the planted ICP and anti-ICP, the effect sizes,
   the size of the table, the outcome columns and the icpml column roles. Everything is
   drawn from ``numpy.random.default_rng([family id, seed, 0])``; a pilot sample of
   20,000 rows fixes the numeric thresholds (quantiles, rounded to two significant
   digits) and checks the planted segment's coverage.
2. :func:`sample` (spec, n, stream) -> :class:`Sample`: ``n`` rows from that spec.
   Stream ``"train"`` gives the customers icpml learns from; stream ``"fresh"`` gives
   new accounts from the same generator (prospects: post-outcome columns blank), on
   which row membership is compared with the planted truth.

The planted truth of a row is computed on its *clean* values (before missing values and
spelling variants are added), so the truth never depends on what a method can see.

Value model (latent, per row; the outcomes are noisy functions of it)::

    value = b * [ICP] + sum_i m_i * [condition i] - sum_j a_j * [anti condition j] + N(0, 1)

with ``b`` the effect size (weak 0.8 to strong 3.0 noise standard deviations), ``m_i``
partial main effects (0 to 0.35 b) and ``a_j`` 1.5 to 3.0. The interaction family
replaces the ICP term by ``b (A - pA)(B - pB) / ((1 - pA)(1 - pB))``: A AND B gains ``b``,
while A alone and B alone have exactly no effect on the expected value.
The planted ICP segment is ``ICP AND NOT anti-ICP``; the planted anti-ICP is the OR of
the anti conditions. See README.md (procedural benchmark) for the families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from icpml.cohorts import BEST, label_cohorts, value_score
from icpml.config import FEATURE_GROUPS, Config, OutcomeMetric, config_from_dict

PROJECT = Path(__file__).resolve().parents[2]
#: family name -> stable id (part of every rng seed: a family's seeds are its own)
FAMILIES: dict[str, int] = {
    "conjunctive": 1,
    "confounder": 2,
    "interaction": 3,
    "leak": 4,
    "messy": 5,
    "codes": 6,
    "product": 7,
    "small": 8,
    "null": 9,
}
SIGNAL_FAMILIES = tuple(f for f in FAMILIES if f != "null")
PILOT_N = 20_000
#: planted ICP segment (ICP and not anti) must cover this share of the pilot rows
MIN_COVERAGE, MAX_COVERAGE = 0.04, 0.35

_SYL = ["nor", "vex", "al", "tri", "qua", "zen", "lum", "cor", "bri", "sol", "ver", "pax",
        "kin", "dra", "mo", "tel", "ori", "fyn", "gal", "ux", "ma", "ro", "sti", "ken"]
_NUMERIC_NAMES = [
    "employees", "headcount", "annual_revenue_musd", "it_budget_k", "web_traffic_k",
    "funding_raised_musd", "years_in_business", "n_locations", "eng_headcount", "open_roles",
    "intent_score", "page_views_30d", "webinars_attended", "g2_reviews", "tech_spend_k",
    "growth_rate_pct", "n_subsidiaries", "cloud_spend_k", "dev_team_size", "store_count",
    "monthly_orders_k", "fleet_size", "patients_per_day", "seats_requested"]
_CATEGORY_NAMES = [
    "industry", "vertical", "sector", "region", "hq_country", "crm", "erp", "cloud_provider",
    "marketing_automation", "ownership", "lead_source", "billing_system", "data_warehouse",
    "company_type", "sales_channel", "language", "payment_processor", "hosting"]
_BOOL_NAMES = ["requires_onprem", "has_soc2", "uses_sso", "is_public", "has_partner",
               "gdpr_scope", "multi_entity", "has_procurement_team"]
_CODE_NAMES = ["channel", "tier_code", "region_code", "segment_code", "plan_level",
               "risk_class", "size_class", "priority"]
_CODE_SETS = [(1, 2), (1, 2, 3), (0, 1, 2, 3), (1, 2, 3, 4, 5), (10, 20, 30, 40), (2, 3)]
_LEAK_NAMES = {
    "health": ["health_score", "cs_health", "account_score", "engagement_index", "csm_rating"],
    "status": ["status", "account_status", "rep_tag", "lifecycle_flag", "crm_label"],
    "duration": ["last_call_duration", "contact_duration", "call_secs", "touch_minutes",
                 "meeting_length"],
}
_ID_FEATURE_NAMES = ["crm_account_ref", "sfdc_id", "external_key", "customer_ref",
                     "hubspot_company_id"]
_PRODUCT_NAMES = ["core", "analytics", "payments", "security", "ai_addon", "mobile"]


# ----------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class Column:
    """One generated feature column.

    ``kind``: ``numeric``, ``category``, ``bool`` or ``code`` (numeric with 2-5 values).
    Every column is a transform of a latent standard normal; ``parent`` / ``rho``
    correlate it with another column's latent normal (Gaussian copula).
    """

    name: str
    kind: str
    dist: str = ""                      # numeric: lognormal, uniform, normal, count
    params: tuple[float, ...] = ()
    integer: bool = False
    levels: tuple = ()                  # category / code values
    probs: tuple[float, ...] = ()       # category / code probabilities; bool: (p_true,)
    parent: str | None = None
    rho: float = 0.0

    def from_latent(self, z: np.ndarray) -> np.ndarray:
        """Column values from latent standard normals ``z``."""
        u = stats.norm.cdf(z)
        if self.kind == "numeric":
            if self.dist == "lognormal":
                mu, sigma = self.params
                x = np.exp(mu + sigma * z)
            elif self.dist == "uniform":
                lo, hi = self.params
                x = lo + (hi - lo) * u
            elif self.dist == "normal":
                mu, sd = self.params
                x = mu + sd * z
            else:  # count: negative binomial (overdispersed, skewed)
                r, p = self.params
                x = stats.nbinom.ppf(np.clip(u, 1e-12, 1 - 1e-12), r, p)
            return np.round(x) if self.integer else np.round(x, 2)
        if self.kind == "bool":
            return u < self.probs[0]
        idx = np.searchsorted(np.cumsum(self.probs)[:-1], u, side="right")
        return np.asarray(self.levels, dtype=object)[idx]


@dataclass(frozen=True)
class Cond:
    """One planted condition on a column's clean values.

    ``op``: ``in`` (category / code / bool values), ``band`` (lo <= x <= hi),
    ``ge`` (x >= lo) or ``le`` (x <= hi).
    """

    column: str
    op: str
    values: tuple = ()
    lo: float | None = None
    hi: float | None = None

    def mask(self, df: pd.DataFrame, *, observed: bool = False) -> np.ndarray:
        """Rows meeting the condition; ``observed``: on loaded (messy) values, where
        missing never matches and categories compare by case- and space-free spelling."""
        s = df[self.column]
        if self.op == "in":
            if observed and not pd.api.types.is_numeric_dtype(s) \
                    and not pd.api.types.is_bool_dtype(s):
                keys = {" ".join(str(v).split()).casefold() for v in self.values}
                txt = s.astype("string").str.split().str.join(" ").str.casefold()
                return txt.isin(keys).fillna(False).to_numpy(bool)
            return s.isin(list(self.values)).fillna(False).to_numpy(bool)
        x = pd.to_numeric(s, errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            if self.op == "band":
                return (x >= self.lo) & (x <= self.hi)
            if self.op == "ge":
                return x >= self.lo
            return x <= self.hi

    def describe(self) -> str:
        if self.op == "in":
            vals = sorted(self.values, key=str)
            return (f"{self.column} = {vals[0]}" if len(vals) == 1
                    else f"{self.column} in {{{', '.join(map(str, vals))}}}")
        if self.op == "band":
            return f"{_num(self.lo)} <= {self.column} <= {_num(self.hi)}"
        if self.op == "ge":
            return f"{self.column} >= {_num(self.lo)}"
        return f"{self.column} <= {_num(self.hi)}"


def _num(x: float | None) -> str:
    return "?" if x is None else f"{x:g}" if abs(x) < 1e6 else f"{x:,.0f}"


@dataclass(frozen=True)
class Plant:
    """A planted ICP (conjunction) and anti-ICP (disjunction) with their effects."""

    icp: tuple[Cond, ...]
    anti: tuple[Cond, ...]
    effect: float                       # b
    mains: tuple[float, ...]            # m_i per ICP condition
    anti_effects: tuple[float, ...]     # a_j per anti condition
    interaction: bool = False           # mains are negative: A alone, B alone flat
    shares: tuple[float, ...] = ()      # pilot share of each ICP condition

    def icp_mask(self, df: pd.DataFrame, *, observed: bool = False) -> np.ndarray:
        """Planted ICP segment: every ICP condition and no anti condition."""
        m = np.ones(len(df), dtype=bool)
        for c in self.icp:
            m &= c.mask(df, observed=observed)
        return m & ~self.anti_mask(df, observed=observed)

    def anti_mask(self, df: pd.DataFrame, *, observed: bool = False) -> np.ndarray:
        m = np.zeros(len(df), dtype=bool)
        for c in self.anti:
            m |= c.mask(df, observed=observed)
        return m

    def value(self, df: pd.DataFrame) -> np.ndarray:
        """The planted part of the latent value (no noise)."""
        hits = [c.mask(df) for c in self.icp]
        v = self.effect * np.logical_and.reduce(hits).astype(float)
        for h, m in zip(hits, self.mains, strict=True):
            v += m * h
        for c, a in zip(self.anti, self.anti_effects, strict=True):
            v -= a * c.mask(df)
        return v

    def describe(self) -> dict:
        return {"icp": " AND ".join(c.describe() for c in self.icp) or None,
                "anti": " OR ".join(c.describe() for c in self.anti) or None,
                "effect": round(self.effect, 3), "mains": [round(m, 3) for m in self.mains],
                "anti_effects": [round(a, 3) for a in self.anti_effects],
                "interaction": self.interaction}


@dataclass(frozen=True)
class Outcome:
    name: str
    kind: str          # arr, nrr, nps, margin, cost
    direction: str
    weight: float
    loading: float     # signal loading on the value
    noise: float
    base: float


@dataclass(frozen=True)
class Spec:
    """Everything one draw fixes: schema, planted truth, size, outcomes and column roles."""

    family: str
    seed: int
    n: int
    columns: tuple[Column, ...]
    plants: dict[str, Plant]            # "" -> the one plant; product family: product -> plant
    outcomes: tuple[Outcome, ...]
    id_col: str
    churn_col: str | None
    churn_base: float
    churn_slope: float
    post_sale: tuple[str, str]          # usage, tickets
    groups: dict[str, str]              # feature column -> feature group
    leaks: dict[str, str] = field(default_factory=dict)       # leak kind -> column
    id_feature: tuple[str, str] | None = None                 # (column, "text" / "number")
    missing: dict[str, float] = field(default_factory=dict)   # column -> share blanked
    variants: dict[str, float] = field(default_factory=dict)  # column -> share respelt
    ownership: float = 1.0              # product family: P(customer owns a product line)
    product_col: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        return list(self.groups)

    @property
    def forbidden(self) -> dict[str, list[str]]:
        """Columns no criterion may name: post-outcome (leak) and identifier columns."""
        return {"leak": list(self.leaks.values()),
                "id": [self.id_feature[0]] if self.id_feature else []}

    def config(self) -> Config:
        """The icpml config of this draw (built programmatically, like a user's YAML)."""
        feats: dict[str, list[str]] = {}
        for c, g in self.groups.items():
            feats.setdefault(g, []).append(c)
        data = {
            "name": f"bench-{self.family}-{self.seed}",
            "columns": {
                "id": self.id_col,
                "features": feats,
                "post_sale": list(self.post_sale),
                "outcomes": [{"column": o.name, "direction": o.direction, "weight": o.weight}
                             for o in self.outcomes],
                "churn": self.churn_col,
            },
        }
        return config_from_dict(data, project_root=PROJECT,
                                source=f"procedural {self.family} seed {self.seed}")


@dataclass
class Sample:
    """Rows drawn from a spec. ``accounts``: what icpml sees (one table per product line,
    key ``""`` outside the product family). ``truth_icp`` / ``truth_anti``: planted
    membership per row of each table, from the clean values. ``clean``: the clean features."""

    accounts: dict[str, pd.DataFrame]
    truth_icp: dict[str, np.ndarray]
    truth_anti: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- helpers
def _rng(family: str, seed: int, stream: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([FAMILIES[family], seed, stream, *extra])


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _nice(x: float, integer: bool) -> float:
    """``x`` rounded to two significant digits (an integer for integer columns)."""
    if x == 0 or not math.isfinite(x):
        return 0.0
    r = float(f"{x:.2g}")
    return float(round(r)) if integer else r


def _words(rng: np.random.Generator, k: int) -> list[str]:
    """``k`` distinct made-up category names (distinct also by case-free spelling)."""
    out: list[str] = []
    while len(out) < k:
        w = "".join(rng.choice(_SYL, size=int(rng.integers(2, 4)))).capitalize()
        if w.casefold() not in {o.casefold() for o in out}:
            out.append(w)
    return out


def _draw_column(rng: np.random.Generator, name: str, kind: str) -> Column:
    if kind == "numeric":
        dist = str(rng.choice(["lognormal", "lognormal", "uniform", "normal", "count"]))
        if dist == "lognormal":
            return Column(name, kind, dist, (rng.uniform(math.log(5), math.log(2000)),
                                             rng.uniform(0.5, 1.4)), integer=bool(rng.random() < .5))
        if dist == "uniform":
            lo = float(rng.uniform(0, 100))
            return Column(name, kind, dist, (lo, lo + float(rng.uniform(10, 1000))),
                          integer=bool(rng.random() < .5))
        if dist == "normal":
            return Column(name, kind, dist, (float(rng.uniform(20, 200)),
                                             float(rng.uniform(5, 40))))
        return Column(name, kind, dist, (float(rng.uniform(1, 4)), float(rng.uniform(.05, .3))),
                      integer=True)
    if kind == "bool":
        return Column(name, kind, probs=(float(rng.uniform(0.15, 0.6)),))
    if kind == "code":
        levels = _CODE_SETS[int(rng.integers(len(_CODE_SETS)))]
        probs = rng.dirichlet(np.full(len(levels), rng.choice([1.0, 3.0])))
        probs = 0.5 * probs + 0.5 / len(levels)  # every code is common enough to matter
        return Column(name, kind, levels=levels, probs=tuple(probs / probs.sum()))
    k = int(rng.integers(3, 13))
    alpha = float(rng.choice([0.5, 1.0, 3.0]))  # skewed to even category shares
    probs = np.maximum(rng.dirichlet(np.full(k, alpha)), 0.02)
    return Column(name, kind, levels=tuple(_words(rng, k)), probs=tuple(probs / probs.sum()))


def _schema(rng: np.random.Generator, *, n_code: int = 0) -> list[Column]:
    """Random feature columns: 2-6 numeric, 2-5 category, 0-2 yes/no, ``n_code`` codes."""
    kinds = (["numeric"] * int(rng.integers(2, 7)) + ["category"] * int(rng.integers(2, 6))
             + ["bool"] * int(rng.integers(0, 3)) + ["code"] * n_code)
    pools = {"numeric": list(rng.permutation(_NUMERIC_NAMES)),
             "category": list(rng.permutation(_CATEGORY_NAMES)),
             "bool": list(rng.permutation(_BOOL_NAMES)), "code": list(rng.permutation(_CODE_NAMES))}
    cols = [_draw_column(rng, str(pools[k].pop()), k) for k in kinds]
    order = rng.permutation(len(cols))
    return [cols[i] for i in order]


def _latent(columns: tuple[Column, ...] | list[Column], n: int,
            rng: np.random.Generator) -> pd.DataFrame:
    """Clean feature values of ``n`` rows (Gaussian copula over the columns)."""
    z: dict[str, np.ndarray] = {}
    for c in columns:  # parents first
        if c.parent is None:
            z[c.name] = rng.standard_normal(n)
    for c in columns:
        if c.parent is not None:
            z[c.name] = c.rho * z[c.parent] + math.sqrt(1 - c.rho ** 2) * rng.standard_normal(n)
    out = {}
    for c in columns:
        v = c.from_latent(z[c.name])
        if c.kind == "category":
            out[c.name] = pd.array(v, dtype="string")
        elif c.kind == "bool":
            out[c.name] = v.astype(bool)
        elif c.kind == "code" or (c.kind == "numeric" and c.integer):
            out[c.name] = v.astype(np.int64)
        else:
            out[c.name] = v.astype(float)
    return pd.DataFrame(out)


def _share(mask: np.ndarray) -> float:
    return float(np.mean(mask))


def _draw_cond(rng: np.random.Generator, col: Column, pilot: pd.DataFrame,
               lo_share: float = 0.1, hi_share: float = 0.75) -> Cond | None:
    """A random condition on ``col`` whose pilot share is in [lo_share, hi_share]."""
    for _ in range(30):
        if col.kind in ("category", "code"):
            k = len(col.levels)
            size = int(rng.integers(1, max(2, k // 2 + 1)))
            vals = tuple(sorted((col.levels[i] for i in rng.choice(k, size, replace=False)),
                                key=str))
            cond = Cond(col.name, "in", vals)
        elif col.kind == "bool":
            cond = Cond(col.name, "in", (bool(rng.random() < 0.6),))
        else:
            x = pilot[col.name].to_numpy(float)
            shape = str(rng.choice(["wide", "narrow", "ge", "le"]))
            share = float(rng.uniform(*{"wide": (0.4, 0.7), "narrow": (0.15, 0.3),
                                        "ge": (0.2, 0.6), "le": (0.2, 0.6)}[shape]))
            if shape in ("wide", "narrow"):
                q0 = float(rng.uniform(0.02, 0.98 - share))
                lo, hi = (_nice(float(np.quantile(x, q)), col.integer) for q in (q0, q0 + share))
                if not lo < hi:
                    continue
                cond = Cond(col.name, "band", lo=lo, hi=hi)
            elif shape == "ge":
                cond = Cond(col.name, "ge", lo=_nice(float(np.quantile(x, 1 - share)), col.integer))
            else:
                cond = Cond(col.name, "le", hi=_nice(float(np.quantile(x, share)), col.integer))
        if lo_share <= _share(cond.mask(pilot)) <= hi_share:
            return cond
    return None


def _draw_anti(rng: np.random.Generator, cols: list[Column], pilot: pd.DataFrame) -> list[Cond]:
    """1-2 anti conditions (each 4-15% of rows) on the given columns."""
    out: list[Cond] = []
    for col in cols[: int(rng.integers(1, 3))]:
        before = len(out)
        if col.kind in ("category", "code"):
            small = [lv for lv, p in zip(col.levels, col.probs, strict=True) if 0.04 <= p <= 0.15]
            if not small:
                continue
            out.append(Cond(col.name, "in", (small[int(rng.integers(len(small)))],)))
        elif col.kind == "bool":
            p = col.probs[0]
            if 0.04 <= p <= 0.15:
                out.append(Cond(col.name, "in", (True,)))
            elif 0.04 <= 1 - p <= 0.15:
                out.append(Cond(col.name, "in", (False,)))
        else:
            x = pilot[col.name].to_numpy(float)
            share = float(rng.uniform(0.05, 0.15))
            if rng.random() < 0.5:
                out.append(Cond(col.name, "le", hi=_nice(float(np.quantile(x, share)),
                                                         col.integer)))
            else:
                out.append(Cond(col.name, "ge", lo=_nice(float(np.quantile(x, 1 - share)),
                                                         col.integer)))
        if len(out) > before and not 0.02 <= _share(out[-1].mask(pilot)) <= 0.2:
            out.pop()
    return out


def _draw_plant(rng: np.random.Generator, cols: list[Column], pilot: pd.DataFrame, *,
                n_icp: int, effect: tuple[float, float], interaction: bool = False,
                must: list[Column] | None = None, anti_pool: list[Column] | None = None
                ) -> Plant:
    """A random plant whose planted ICP segment covers 4-35% of the pilot rows."""
    must = must or []
    for attempt in range(400):
        if attempt and attempt % 100 == 0 and n_icp > max(1, len(must)):
            n_icp -= 1  # too narrow (or no anti column) with this many conditions
        others = [c for c in cols if c not in must]
        picks = list(must) + [others[i] for i in rng.permutation(len(others))[: n_icp - len(must)]]
        lo_share = 0.15 if interaction else 0.1
        hi_share = 0.5 if interaction else 0.75
        conds = [_draw_cond(rng, c, pilot, lo_share, hi_share) for c in picks]
        if any(c is None for c in conds):
            continue
        rest = [c for c in (anti_pool if anti_pool is not None else cols) if c not in picks]
        anti = _draw_anti(rng, [rest[i] for i in rng.permutation(len(rest))], pilot)
        b = _loguniform(rng, *effect)
        shares = tuple(_share(c.mask(pilot)) for c in conds)
        anti_fx = tuple(float(rng.uniform(1.5, 3.0)) for _ in anti)
        mains = (_compensate(b, shares, anti, anti_fx, pilot) if interaction
                 else tuple(b * float(rng.uniform(0, .35)) for _ in conds))
        plant = Plant(tuple(conds), tuple(anti), b, mains, anti_fx, interaction, shares)
        if MIN_COVERAGE <= _share(plant.icp_mask(pilot)) <= MAX_COVERAGE and anti:
            return plant
    raise RuntimeError("could not draw a planted ICP within the coverage bounds")


def _compensate(b: float, shares: tuple[float, ...], anti: list[Cond],
                anti_fx: tuple[float, ...], pilot: pd.DataFrame) -> tuple[float, ...]:
    """Negative main effects ``m_A``, ``m_B`` such that, with ``value = b [A and B] + m_A [A]
    + m_B [B] - anti + noise``, A alone and B alone leave the top-quartile rate unchanged:
    P(best | A) = P(best | not A), the same for B (a pure interaction: a univariate look at
    A or at B sees nothing). Solved by fixed-point iteration on a simulated sample with the
    pilot's anti conditions and noise of standard deviation 1.15 (latent + outcome noise)."""
    rng = np.random.default_rng(12345)
    n = 60_000
    a = rng.random(n) < shares[0]
    bb = rng.random(n) < shares[1]
    anti_v = np.zeros(n)
    idx = rng.integers(0, len(pilot), n)
    for c, fx in zip(anti, anti_fx, strict=True):
        anti_v -= fx * c.mask(pilot)[idx]
    noise = rng.normal(0, 1.15, n)
    m = np.array([-b * shares[1], -b * shares[0]])
    for _ in range(60):
        v = b * (a & bb) + m[0] * a + m[1] * bb + anti_v + noise
        best = v >= np.quantile(v, 0.75)
        gap = np.array([best[a].mean() - best[~a].mean(), best[bb].mean() - best[~bb].mean()])
        if np.abs(gap).max() < 0.002:
            break
        m -= 2.5 * gap
    return (float(m[0]), float(m[1]))


def _draw_outcomes(rng: np.random.Generator) -> tuple[Outcome, ...]:
    kinds = [("arr", ["arr", "acv", "revenue_12m", "annual_contract_value"], "higher"),
             ("nrr", ["nrr", "net_retention", "ndr"], "higher"),
             ("nps", ["nps", "csat"], "higher"),
             ("margin", ["gross_margin_pct", "contribution_margin"], "higher"),
             ("cost", ["support_cost", "cost_to_serve"], "lower")]
    chosen = [kinds[i] for i in sorted(rng.choice(len(kinds), int(rng.integers(1, 4)),
                                                  replace=False))]
    out = []
    for kind, names, direction in chosen:
        out.append(Outcome(str(rng.choice(names)), kind, direction,
                           float(rng.choice([0.5, 1.0, 1.0, 2.0])),
                           float(rng.uniform(0.7, 1.0)), float(rng.uniform(0.2, 0.5)),
                           float(rng.uniform(8_000, 90_000))))
    return tuple(out)


def _outcome_values(o: Outcome, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    e = o.loading * v + rng.normal(0, o.noise, len(v))
    if o.kind == "arr":
        return np.round(np.exp(math.log(o.base) + 0.45 * e), -1)
    if o.kind == "nrr":
        return np.round(1.0 + 0.08 * e, 3)
    if o.kind == "nps":
        return np.clip(np.round(20 + 18 * e), -100, 100)
    if o.kind == "margin":
        return np.round(np.clip(55 + 8 * e, 0, 100), 1)
    return np.round(np.exp(math.log(o.base / 20) - 0.35 * e), 2)  # cost: lower is better


# ----------------------------------------------------------------------------- specs
def draw_spec(family: str, seed: int) -> Spec:
    """The planted truth, schema and size of one draw (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    rng = _rng(family, seed, 0)
    cols = _schema(rng, n_code=1 if family == "codes" else int(rng.random() < 0.2))
    info: dict = {}
    # sizes: 200-500 (small), else mostly 1k-10k with a few 12k-50k
    if family == "small":
        n = int(_loguniform(rng, 200, 500))
    elif family == "null":
        n = int(_loguniform(rng, 200, 10_000))
    elif family != "product" and rng.random() < 0.12:
        n = int(_loguniform(rng, 12_000, 50_000))
    else:
        n = int(_loguniform(rng, 1_000, 10_000))
    if family == "confounder":
        causal = [c for c in cols if c.kind == "numeric"][0]
        name = next(nm for nm in rng.permutation(_NUMERIC_NAMES)
                    if nm not in {c.name for c in cols})
        conf = replace(_draw_column(rng, str(name), "numeric"), parent=causal.name,
                       rho=float(rng.uniform(0.52, 0.82)))  # Spearman 0.5-0.8
        cols.insert(int(rng.integers(0, len(cols) + 1)), conf)
    pilot = _latent(cols, PILOT_N, _rng(family, seed, 3))
    candidates = [c for c in cols if c.parent is None]
    plants: dict[str, Plant] = {}
    if family in ("conjunctive", "leak", "messy", "confounder"):
        must = ([next(c for c in cols if c.name == conf.parent)]
                if family == "confounder" else None)
        plants[""] = _draw_plant(rng, candidates, pilot, n_icp=int(rng.integers(1, 5)),
                                 effect=(0.8, 3.0), must=must)
    elif family == "interaction":
        plants[""] = _draw_plant(rng, candidates, pilot, n_icp=2, effect=(1.5, 3.5),
                                 interaction=True)
    elif family == "codes":
        code = [c for c in cols if c.kind == "code"][-1]
        plants[""] = _draw_plant(rng, candidates, pilot, n_icp=int(rng.integers(1, 4)),
                                 effect=(0.8, 3.0), must=[code])
    elif family == "small":
        plants[""] = _draw_plant(rng, candidates, pilot, n_icp=int(rng.integers(1, 3)),
                                 effect=(2.0, 3.5))
    elif family == "product":
        names = sorted(rng.choice(_PRODUCT_NAMES, int(rng.integers(2, 4)), replace=False))
        for p in names:
            plants[str(p)] = _draw_plant(rng, candidates, pilot, n_icp=int(rng.integers(1, 4)),
                                         effect=(0.8, 3.0))
    if family == "confounder":
        causal_vals = pilot[conf.parent].to_numpy(float)
        info["confounder"] = {"column": conf.name, "correlated_with": conf.parent,
                              "latent_rho": round(conf.rho, 3),
                              "spearman": round(float(stats.spearmanr(
                                  causal_vals, pilot[conf.name]).statistic), 3)}
    id_col = str(rng.choice(["account_id", "customer_id", "id", "company_id"]))
    churn_col = str(rng.choice(["churned", "is_churned", "lost"]))
    post_sale = (str(rng.choice(["product_usage_pct", "usage_ratio", "adoption_pct"])),
                 str(rng.choice(["support_tickets_per_month", "tickets_90d"])))
    groups = {c.name: str(rng.choice(FEATURE_GROUPS)) for c in cols}
    spec = Spec(family, seed, n, tuple(cols), plants, _draw_outcomes(rng), id_col, churn_col,
                float(rng.uniform(-2.2, -1.0)), float(rng.uniform(0.6, 1.2)), post_sale, groups,
                info=info)
    if family == "leak":
        kinds = [k for k in _LEAK_NAMES if rng.random() < 0.6] or [str(rng.choice(list(_LEAK_NAMES)))]
        taken = set(groups) | {id_col, churn_col, *post_sale}
        leaks = {}
        for k in kinds:
            leaks[k] = str(next(nm for nm in rng.permutation(_LEAK_NAMES[k]) if nm not in taken))
        groups = dict(groups)
        for col in leaks.values():
            groups[col] = str(rng.choice(["behavioural", "intent", "technographic"]))
        spec = replace(spec, leaks=leaks, groups=groups)
    if family == "messy":
        feats = [c.name for c in cols]
        miss = {str(c): float(rng.uniform(0.05, 0.25))
                for c in rng.choice(feats, int(rng.integers(2, min(6, len(feats)) + 1)),
                                    replace=False)}
        cats = [c.name for c in cols if c.kind == "category"]
        var = {str(c): float(rng.uniform(0.1, 0.25))
               for c in rng.choice(cats, min(len(cats), int(rng.integers(1, 3))), replace=False)}
        id_feat = (str(rng.choice(_ID_FEATURE_NAMES)), str(rng.choice(["text", "text", "number"])))
        groups = dict(groups)
        groups[id_feat[0]] = str(rng.choice(FEATURE_GROUPS))
        spec = replace(spec, missing=miss, variants=var, id_feature=id_feat, groups=groups)
    if family == "product":
        spec = replace(spec, ownership=float(rng.uniform(0.5, 0.9)),
                       product_col=str(rng.choice(["product", "product_line", "module"])))
    info["planted_lift_pilot"] = _pilot_lift(spec)
    if family == "interaction":
        info["marginal_lift_pilot"] = _marginal_lifts(spec)
    return replace(spec, info=info)


def _pilot_lift(spec: Spec) -> dict[str, float]:
    """Best-cohort lift of each planted ICP segment on a pilot sample (icpml's cohorts)."""
    s = sample(spec, PILOT_N // 2, "pilot")
    cfg = spec.config()
    out = {}
    for key, df in s.accounts.items():
        best = (label_cohorts(value_score(df, list(cfg.columns.outcomes))) == BEST).to_numpy()
        t = s.truth_icp[key]
        out[key or "icp"] = round(float(best[t].mean() / best.mean()), 3) if t.any() else None
    return out


def _marginal_lifts(spec: Spec) -> dict[str, float]:
    """Interaction family: best-cohort lift of A alone and of B alone (should be ~1)."""
    s = sample(spec, PILOT_N // 2, "pilot")
    df = s.accounts[""]
    cfg = spec.config()
    best = (label_cohorts(value_score(df, list(cfg.columns.outcomes))) == BEST).to_numpy()
    out = {}
    for c in spec.plants[""].icp:
        m = c.mask(df)
        out[c.describe()] = round(float(best[m].mean() / best.mean()), 3)
    return out


# ----------------------------------------------------------------------------- sampling
_STREAMS = {"train": 1, "fresh": 2, "pilot": 4}


def sample(spec: Spec, n: int, stream: str = "train") -> Sample:
    """``n`` customers from ``spec`` (see :class:`Sample`). ``stream`` ``"fresh"``: new
    accounts (prospects; every product line present for every customer)."""
    rng = _rng(spec.family, spec.seed, _STREAMS[stream], n)
    clean = _latent(spec.columns, n, rng)
    keys = list(spec.plants) or [""]
    tables, t_icp, t_anti = {}, {}, {}
    owned_any = np.zeros(n, dtype=bool)
    owns = {}
    for k in keys:
        owns[k] = (rng.random(n) < spec.ownership) if (spec.product_col and stream == "train") \
            else np.ones(n, dtype=bool)
        owned_any |= owns[k]
    if spec.product_col and stream == "train":  # every customer owns at least one line
        first = keys[0]
        owns[first] = owns[first] | ~owned_any
    ids = np.array([f"C{spec.seed:04d}-{stream[0]}{i:06d}" for i in range(n)], dtype=object)
    for k in keys:
        plant = spec.plants.get(k)
        v = (plant.value(clean) if plant else np.zeros(n)) + rng.standard_normal(n)
        df = clean.copy()
        df.insert(0, spec.id_col, pd.array(ids, dtype="string"))
        if spec.product_col:
            df.insert(1, spec.product_col, pd.array([k] * n, dtype="string"))
        for o in spec.outcomes:
            df[o.name] = _outcome_values(o, v, rng)
        churn = rng.random(n) < 1 / (1 + np.exp(-(spec.churn_base - spec.churn_slope * v)))
        df[spec.churn_col] = churn
        usage = np.clip(0.55 + 0.1 * v + rng.normal(0, 0.12, n), 0, 1).round(3)
        df[spec.post_sale[0]] = usage
        df[spec.post_sale[1]] = rng.poisson(np.exp(0.6 - 0.15 * v))
        _add_leaks(spec, df, v, usage, churn, rng)
        icp = plant.icp_mask(clean) if plant else np.zeros(n, dtype=bool)
        anti = plant.anti_mask(clean) if plant else np.zeros(n, dtype=bool)
        _make_messy(spec, df, rng, ids)
        keep = owns[k]
        tables[k] = df[keep].reset_index(drop=True)
        t_icp[k], t_anti[k] = icp[keep], anti[keep]
    return Sample(tables, t_icp, t_anti)


def _add_leaks(spec: Spec, df: pd.DataFrame, v: np.ndarray, usage: np.ndarray,
               churn: np.ndarray, rng: np.random.Generator) -> None:
    """Post-outcome columns (known only after the sale; the benchmark blanks them on the
    fresh accounts, which stand for prospects)."""
    n = len(df)
    for kind, col in spec.leaks.items():
        if kind == "health":  # derived from usage and churn
            x = np.clip(np.round(30 + 40 * usage + 25 * (~churn) + rng.normal(0, 5, n)), 0, 100)
            df[col] = x
        elif kind == "status":  # a rep's tag set after the outcome is known
            q1, q3 = np.quantile(v, [0.25, 0.75])
            tag = np.where(churn, "Churned", np.where(v >= q3, "Expanding",
                                                      np.where(v <= q1, "At risk", "Active")))
            noise = rng.random(n) < 0.05
            tag = np.where(noise, rng.choice(["Active", "At risk", "Expanding"], n), tag)
            df[col] = pd.array(list(tag), dtype="string")
        else:  # contact duration: long calls are the ones that converted
            top = v >= np.quantile(v, 0.75)
            x = np.round(np.exp(4.5 + 0.7 * top + 0.25 * v + rng.normal(0, 0.4, n)))
            df[col] = x


def _make_messy(spec: Spec, df: pd.DataFrame, rng: np.random.Generator,
                ids: np.ndarray) -> None:
    """Missing values, spelling variants and an identifier listed among the features."""
    n = len(df)
    for c, share in spec.missing.items():
        s = df[c]
        hit = rng.random(n) < share
        if pd.api.types.is_bool_dtype(s):
            df[c] = s.astype("boolean").mask(hit)
        elif pd.api.types.is_numeric_dtype(s):
            df[c] = s.astype(float).mask(hit)
        else:
            df[c] = s.mask(hit)
    for c, share in spec.variants.items():
        s = np.array(df[c].astype(object).to_numpy(), dtype=object)
        hit = np.flatnonzero(pd.notna(s) & (rng.random(n) < share))
        pick = rng.integers(0, 4, len(hit))
        for i, k in zip(hit, pick, strict=True):
            val = str(s[i])
            s[i] = [val.lower(), val.upper(), f" {val}", f"{val} "][k]
        df[c] = pd.array(s, dtype="string")
    if spec.id_feature:
        col, kind = spec.id_feature
        if kind == "number":
            df[col] = 100_000 + rng.permutation(n)
        else:
            alphabet = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789"))
            tails = rng.choice(alphabet, size=(n, 9))
            df[col] = pd.array([f"0016A{''.join(t)}" for t in tails], dtype="string")


def spec_summary(spec: Spec) -> dict:
    """What was planted, for the results (JSON-ready)."""
    return {
        "family": spec.family, "seed": spec.seed, "n": spec.n,
        "columns": {c.name: (c.kind if c.kind != "numeric" else f"numeric:{c.dist}")
                    for c in spec.columns},
        "plants": {k or "all": p.describe() for k, p in spec.plants.items()},
        "outcomes": [f"{o.name} ({o.direction}, w={o.weight:g})" for o in spec.outcomes],
        "churn": spec.churn_col, "leaks": spec.leaks, "id_feature": spec.id_feature,
        "missing": {k: round(v, 3) for k, v in spec.missing.items()},
        "variants": {k: round(v, 3) for k, v in spec.variants.items()},
        "product_column": spec.product_col, "ownership": round(spec.ownership, 3),
        **spec.info,
    }


def outcome_metrics(spec: Spec) -> list[OutcomeMetric]:
    return list(spec.config().columns.outcomes)
