"""From SHAP values to ICP inclusion and anti-ICP exclusion criteria, with evidence.

Method
------
The fit model (best vs worst) has learned, per business column, how each value
moves an account towards the best cohort; its grouped SHAP values
(:mod:`icpml.explain`) are that shape. We turn the shape into readable criteria
in three steps that never share rows:

1. **Propose** (SHAP on the model's own training + selection rows). For the
   columns with the largest mean *positive* SHAP and, separately, the largest
   mean *negative* SHAP (the anti-ICP side would otherwise crowd the ICP out of
   a single "top features" list):

   * numeric: sort accounts by value, average SHAP within quantile bins, and
     take each maximal run of bins whose mean SHAP is clearly positive (ICP) or
     negative (anti-ICP; also the churn model's positive side). A run in the
     middle gives a band with both bounds (``150 <= employees <= 600``); a run
     at an end gives one bound (``employees < 50``). Each bound is then moved
     to the exact split the trees use: within the two bins at the edge, the
     threshold that best separates high from low SHAP (a one-dimensional
     regression stump), rounded to the roundest number between the two
     observed values it falls between, so rounding never changes which
     training accounts match.
   * categorical / boolean (one-hot grouped): the mean SHAP of each category
     with enough support. The set of clearly positive categories is an ICP
     candidate (``industry in {SaaS, FinTech}``), as is its top category alone;
     each clearly negative category, and the negative set, are exclusion
     candidates. Missing values are the category ``(missing)``, so
     "tech stack unknown" can be a criterion. A numeric column's missing values
     become an ``is_missing`` candidate when they carry signal.

   "Clearly" means the mean exceeds ``tau = max(0.02, 0.1 * mean |SHAP|)`` of
   that column in log-odds; the real filter is step 2.

   **Interactions.** SHAP values are per account, so the same reading restricted
   to the accounts of a segment shows how each column acts *there*
   (:func:`conditional_candidates`). For the strongest exclusion candidates A,
   the exclusion candidates read inside A's accounts give pairs ``A and B``
   (``requires_onprem = True and employees < 200``), kept as candidates only if
   B's own SHAP is clearly worse with A than without it (more than ``tau`` and at
   least twice as bad): two shortfalls that merely add up ("not Salesforce and
   small") are not an interaction. On the ICP side the ICP is already a
   conjunction; what interactions need there is that each next criterion is read
   inside the segment chosen so far (a size band that pays off only within some
   industries is diluted in the SHAP of all accounts, plain within them). That
   cannot start when neither part helps on its own (A pays off only with B and
   hurts without it, the main effects cancel): for those, a pair search
   (:func:`icp_pair_candidates`) over the columns with the largest mean |SHAP|
   scores every combination of two single conditions (decile cuts, categories) by
   WRAcc on the model's training rows, keeps pairs whose parts are flat alone, takes
   the best cell of the 2x2 the parts form, fits each part given the other, and
   offers ``A and B`` to step 2 as one ICP candidate (confirmed like any other; the
   column pairs searched count as hypotheses in the correction).

2. **Select** (the selection split: rows the model was not fitted on).
   Exclusions first: a fit-side exclusion is kept if accounts matching it reach
   the best cohort at most half as often as average (lift <= 0.5) *and* fall in
   the worst cohort significantly more than ``min_exclusion_worst_lift`` times as
   often as average (one-sided binomial test), so an exclusion marks accounts
   that are actively bad, not merely outside the ICP; a churn-side exclusion if
   they churn significantly more than 1.5 times as often as the rest; both only
   if they drop at most ``max_wrongly_excluded`` of the best accounts. The
   strongest exclusion goes first; each later one must still pass on the
   accounts the earlier ones left in, so proxies of one cause drop out.
   An interaction whose part is itself kept is dropped as redundant.
   Then the ICP, greedily, among accounts no exclusion removes: every candidate
   is tested *within the current segment* (matching vs not matching, one-sided
   Fisher test at ``alpha``); among the columns with a passing candidate, the
   one the model's SHAP says adds most inside the segment is taken, with its
   most significant cut; new candidates are read from the SHAP inside the new
   segment; one criterion per column, until nothing passes. The selection rows
   decide whether and where to cut; the SHAP on many more rows decides which
   column when several pass (on a few dozen rows a strong and a weak column can
   tie by chance). Once the columns are settled, each cut is chosen again given
   all the other criteria (a band picked before the industries it matters in is
   too wide). Finally, on outcome labels of the non-held-out rows: each ICP
   criterion's bounds (:func:`fit_band`) or category set (:func:`fit_set`) is
   chosen for the segment *given the other criteria*: the change points of the
   best rate inside the others' segment (largest chi-square, as a tree splits),
   not the tightest interval; the model's cut stays unless the data clearly
   prefer another, and each edge is shown as the roundest number among the cuts
   the data cannot tell from the best one (600, not 688). Each exclusion bound
   is refined locally (within the accounts ranked near the bound, the split that
   best separates worst from the rest).
   Tree ensembles smear a step over several nearby thresholds; the outcomes say
   where it really is.

3. **Confirm and measure** (the held-out split: never used to fit or to
   select). For every kept criterion, and for the combined ICP (all inclusions,
   no exclusion) and anti-ICP (any exclusion): coverage, best-cohort rate, lift
   with a bootstrap confidence interval, WRAcc, churn inside vs outside, and for
   exclusions the share of best customers wrongly excluded. An ICP criterion
   must also improve the segment *given the others* on these rows (Fisher test
   inside the accounts meeting every other ICP criterion and no exclusion): of two
   correlated columns, the one that only rode along with the cause adds nothing
   there. P-values are corrected with Benjamini-Hochberg across *every candidate
   proposed* in step 1 (the ones not selected count with p = 1); a criterion that
   is not confirmed (q >= alpha) is dropped (the weakest ICP criterion first, the
   others tested again without it) and listed as unconfirmed. If no
   inclusion is confirmed, or the ICP's lift interval includes 1, the verdict
   says no reliable ICP was found, and why.

**Small data: K-fold cross-fitting.** Below :data:`CROSSFIT_BELOW` accounts, or
when the held-out split is too small to confirm a segment twice as good as average
(:func:`use_crossfit`), a three-way split leaves too few rows for each step (300
accounts leave about 90 held-out). Then steps 1-2 run in each of K folds on the other
K-1 folds (models refit there), the fold's criteria are applied to its left-out
accounts, and the pooled out-of-fold memberships are the evidence: every account
serves as held-out evidence once. The final criteria come from the same procedure on
all accounts; the interval is a bootstrap of the pooled out-of-fold accounts (see
:func:`_derive_crossfit`).

Only targetable columns reach step 1: outcomes, post-sale columns, identifiers
and leakage suspects are removed before (see :mod:`icpml.features`).
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlglot
from scipy import stats
from sqlglot import expressions as sqlx

from icpml._stats import benjamini_hochberg
from icpml._vocab import MISSING
from icpml.cohorts import BEST, WORST
from icpml.config import CriteriaConfig
from icpml.data import spelling_key
from icpml.errors import ConfigError
from icpml.explain import GroupedShap

__all__ = ["Criterion", "CriteriaSet", "CriteriaSplit", "derive_criteria", "use_crossfit", "fit_band", "select_criteria", "segment_evidence",
           "SCHEMA_VERSION", "propose_candidates", "apply_stability", "detectable_lift", "conditional_candidates", "interaction_candidates",
           "icp_pair_candidates"]

SCHEMA_VERSION = "1.0"
Op = Literal["in", "not_in", "between", "<", "<=", ">", ">=", "==", "is_missing"]


# ----------------------------------------------------------------------------- operators
@dataclass(frozen=True)
class _Operator:
    """One operator, defined once; every rendering is derived from these fields.

    ``family`` says what the operator compares: ``numeric`` (``bounds``: each a
    comparison and the criterion attribute holding its bound), ``category`` (the
    criterion's ``values``; ``negate`` for ``not_in``) or ``missing``. ``word`` is how a
    set of values is written (``in`` / ``not in``). :meth:`Criterion._render` walks this
    once for the mask, the SQL, the pandas expression; :meth:`Criterion.describe` and
    :meth:`Criterion.reason` read the same fields for the words.
    """

    family: Literal["numeric", "category", "missing"]
    bounds: tuple[tuple[str, str], ...] = ()
    negate: bool = False
    word: str = "in"


#: The operators of :class:`Criterion` (``between`` is inclusive at both ends).
OPERATORS: dict[str, _Operator] = {
    "in": _Operator("category"),
    "==": _Operator("category"),
    "not_in": _Operator("category", negate=True, word="not in"),
    "between": _Operator("numeric", ((">=", "low"), ("<=", "high"))),
    ">=": _Operator("numeric", ((">=", "low"),)),
    ">": _Operator("numeric", ((">", "low"),)),
    "<=": _Operator("numeric", (("<=", "high"),)),
    "<": _Operator("numeric", (("<", "high"),)),
    "is_missing": _Operator("missing"),
}
_COMPARE = {"<": (operator.lt, sqlx.LT), "<=": (operator.le, sqlx.LTE),
            ">": (operator.gt, sqlx.GT), ">=": (operator.ge, sqlx.GTE)}
_MIRROR = {">=": "<=", ">": "<"}
_BOOL_VALUES = ("True", "False")
#: Boolean spellings accepted when the schema has none for a column (``spelling_key`` folded);
#: the renderings of a real BOOLEAN / 0-1 number ("true", "1", "1.0") are always accepted.
DEFAULT_TRUE = ("1", "1.0", "t", "true", "y", "yes")
DEFAULT_FALSE = ("0", "0.0", "f", "false", "n", "no")
#: The SQL dialect of criteria.json's ``sql`` and of ``icpml export`` without ``--dialect``.
DEFAULT_DIALECT = "duckdb"
_NUMBER_RX = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_CURRENCY_MARKS = ("$", "€", "£", "¥", "USD", "EUR", "GBP")


def _column_schema(schema: dict | None, column: str) -> dict:
    return ((schema or {}).get("columns") or {}).get(column) or {}


def _number_format(info: dict) -> dict | None:
    """How the source writes numbers of a numeric column (None: plain numbers)."""
    if not (info.get("thousands") or info.get("decimal", ".") != "." or info.get("currency")
            or info.get("percent")):
        return None
    return {"thousands": info.get("thousands"), "decimal": info.get("decimal") or ".",
            "currency": bool(info.get("currency")), "percent": bool(info.get("percent"))}


def _spellings(info: dict, truth: bool) -> list[str]:
    """Folded spellings of one truth value: the schema's, and the typed renderings."""
    listed = info.get("true" if truth else "false") or (DEFAULT_TRUE if truth else DEFAULT_FALSE)
    typed = ("true", "1", "1.0") if truth else ("false", "0", "0.0")
    return sorted({spelling_key(v) for v in listed} | set(typed))


# -- the three renderings: one small vocabulary each, the walk is Criterion._render
class _MaskOps:
    """Boolean Series over a coerced account table (numbers float, booleans boolean)."""

    def __init__(self, df: pd.DataFrame):
        self.df, self._folded = df, {}

    def series(self, col: str) -> pd.Series:
        return self.df[col]

    def num(self, col: str, fmt: dict | None) -> pd.Series:
        return pd.to_numeric(self.df[col], errors="coerce").astype(float)

    def cmp(self, x: pd.Series, op: str, bound: float) -> pd.Series:
        return _COMPARE[op][0](x, bound).fillna(False).astype(bool)

    def _fold(self, col: str) -> tuple[np.ndarray, np.ndarray]:
        if col not in self._folded:
            codes, uniques = pd.factorize(self.df[col])
            keys = np.array([spelling_key(u) for u in uniques], dtype=object)
            self._folded[col] = codes, keys
        return self._folded[col]

    def _by_value(self, col: str, per_value: np.ndarray, if_missing: bool) -> pd.Series:
        codes, _ = self._fold(col)
        out = np.where(codes >= 0, per_value[np.maximum(codes, 0)] if len(per_value) else False,
                       if_missing)
        return pd.Series(out.astype(bool), index=self.df.index)

    def one_of(self, col: str, keys: list[str]) -> pd.Series:
        return self._by_value(col, np.isin(self._fold(col)[1], keys), False)

    def missing(self, col: str, known: list[str] | None = None) -> pd.Series:
        ukeys = self._fold(col)[1]
        miss = (ukeys == "") | (~np.isin(ukeys, known) if known is not None else False)
        return self._by_value(col, np.asarray(miss, dtype=bool), True)

    def num_missing(self, x: pd.Series) -> pd.Series:
        return x.isna()

    @staticmethod
    def all_(parts: list) -> pd.Series:
        return functools.reduce(operator.and_, parts)

    @staticmethod
    def any_(parts: list) -> pd.Series:
        return functools.reduce(operator.or_, parts)

    @staticmethod
    def not_(x: pd.Series) -> pd.Series:
        return ~x

    none_of = not_

    def false(self) -> pd.Series:
        return pd.Series(False, index=self.df.index)


class _SqlOps:
    """sqlglot expressions over the raw table, for one dialect.

    Text is folded like :func:`icpml.data.spelling_key` (whitespace runs -> one space,
    trimmed, lower case). A named dialect with ``REGEXP_REPLACE`` folds every ASCII
    whitespace run. Without a dialect the SQL is portable (runs in DuckDB and SQLite
    alike): tabs become spaces and runs of up to 64 spaces are halved away by nested
    ``REPLACE``; SQLite also folds newlines, CR, VT and FF. ``LOWER`` is not
    ``casefold`` ("ß" stays), so both foldings of each value are listed. Non-ASCII
    spaces are not folded in SQL. Numbers are cast only when the text looks like one
    (``TRY_CAST`` where the dialect has it), so a stray word is NULL, never 0.
    """

    _TEXT = sqlx.DataType.build("text")
    _DOUBLE = sqlx.DataType.build("double")
    _DIGITS = "0123456789.eE+-"

    def __init__(self, dialect: str | None):
        self.portable = dialect is None
        self.dialect = DEFAULT_DIALECT if dialect is None else dialect
        self.sqlite = sqlglot.Dialect.get_or_raise(self.dialect).__class__.__name__ == "SQLite"
        probe = sqlx.TryCast(this=sqlx.column("x"), to=self._DOUBLE).sql(dialect=self.dialect)
        self.try_cast = not self.portable and not probe.upper().startswith("CAST(")
        self.regex = not (self.portable or self.sqlite)
        self._folded: dict[str, sqlx.Expression] = {}

    @staticmethod
    def col(col: str) -> sqlx.Expression:
        return sqlx.column(col, quoted=True)

    @staticmethod
    def series(col: str) -> None:  # the raw table's types are not known here
        return None

    def text(self, col: str) -> sqlx.Expression:
        return sqlx.Cast(this=self.col(col), to=self._TEXT.copy())

    @staticmethod
    def _replace(x: sqlx.Expression, old: sqlx.Expression | str, new: str) -> sqlx.Expression:
        old = sqlx.Literal.string(old) if isinstance(old, str) else old
        return sqlx.Replace(this=x, expression=old, replacement=sqlx.Literal.string(new))

    def _fold(self, col: str) -> sqlx.Expression:
        if col not in self._folded:
            t = self.text(col)
            if self.regex:
                t = sqlx.RegexpReplace(this=t, expression=sqlx.Literal.string(r"\s+"),
                                      replacement=sqlx.Literal.string(" "))
            else:
                for code in ((9, 10, 11, 12, 13) if self.sqlite else (9,)):
                    ch = (sqlx.Anonymous(this="CHAR", expressions=[sqlx.Literal.number(code)])
                          if self.sqlite else chr(code))
                    t = self._replace(t, ch, " ")
                for _ in range(6):
                    t = self._replace(t, "  ", " ")
            self._folded[col] = sqlx.Lower(this=sqlx.Trim(this=t))
        return self._folded[col].copy()

    def num(self, col: str, fmt: dict | None) -> sqlx.Expression:
        x = self.col(col)
        if fmt is not None:  # clean the text as icpml read it: marks off, separators off
            x = sqlx.Trim(this=self.text(col))
            marks = [*(_CURRENCY_MARKS if fmt["currency"] else ()), *(("%",) if fmt["percent"] else ())]
            if fmt["thousands"]:
                marks.append(fmt["thousands"])
            for m in marks:
                x = self._replace(x, m, "")
            if fmt["decimal"] != ".":
                x = self._replace(x, fmt["decimal"], ".")
            x = sqlx.Trim(this=x)
        if self.try_cast:
            return sqlx.TryCast(this=x, to=self._DOUBLE.copy())
        # cast only what looks like a number (CAST('abc' AS REAL) is 0 in SQLite, an error elsewhere)
        t = sqlx.Trim(this=sqlx.Cast(this=x.copy(), to=self._TEXT.copy()))
        ok = sqlx.and_(sqlx.NEQ(this=t, expression=sqlx.Literal.string("")),
                      sqlx.EQ(this=sqlx.Trim(this=t.copy(), expression=sqlx.Literal.string(self._DIGITS)),
                             expression=sqlx.Literal.string("")),
                      sqlx.NEQ(this=sqlx.Trim(this=t.copy(), expression=sqlx.Literal.string(".eE+-")),
                              expression=sqlx.Literal.string("")))
        return sqlx.Case(ifs=[sqlx.If(this=ok, true=sqlx.Cast(this=x, to=self._DOUBLE.copy()))])

    def cmp(self, x: sqlx.Expression, op: str, bound: float) -> sqlx.Expression:
        return _COMPARE[op][1](this=x, expression=sqlx.Literal.number(_sqlnum(bound)))

    def one_of(self, col: str, keys: list[str]) -> sqlx.Expression:
        if not keys:
            return sqlx.false()
        return sqlx.In(this=self._fold(col), expressions=[sqlx.Literal.string(k) for k in keys])

    def missing(self, col: str, known: list[str] | None = None) -> sqlx.Expression:
        parts = [sqlx.Is(this=self.col(col), expression=sqlx.Null()),
                 sqlx.EQ(this=self._fold(col), expression=sqlx.Literal.string(""))]
        if known is not None:
            parts.append(self.not_(self.one_of(col, known)))
        return self.any_(parts)

    @staticmethod
    def num_missing(x: sqlx.Expression) -> sqlx.Expression:
        return sqlx.Is(this=x, expression=sqlx.Null())

    @staticmethod
    def all_(parts: list) -> sqlx.Expression:
        return parts[0] if len(parts) == 1 else sqlx.Paren(this=sqlx.and_(*parts, wrap=True))

    @staticmethod
    def any_(parts: list) -> sqlx.Expression:
        return parts[0] if len(parts) == 1 else sqlx.Paren(this=sqlx.or_(*parts, wrap=True))

    @staticmethod
    def not_(x: sqlx.Expression) -> sqlx.Expression:
        return sqlx.Not(this=x if isinstance(x, sqlx.Paren) else sqlx.Paren(this=x))

    @staticmethod
    def none_of(x: sqlx.Expression) -> sqlx.Expression:
        """No exclusion fires: a NULL comparison (unknown) does not fire one."""
        return sqlx.Not(this=sqlx.Coalesce(this=x, expressions=[sqlx.false()]))

    @staticmethod
    def false() -> sqlx.Expression:
        return sqlx.false()


class _PandasOps:
    """Expression text over the raw table as ``pd.read_csv`` reads it.

    ``code=False``: a ``DataFrame.query`` / ``eval`` expression naming columns in
    backticks (pandas cannot quote a backtick inside one: :class:`ConfigError`);
    ``code=True``: Python over ``df["column"]`` (any name). Text is folded exactly like
    :func:`icpml.data.spelling_key` (``.str.split().str.join(" ").str.casefold()``).
    """

    def __init__(self, code: bool = False):
        self.code = code

    @staticmethod
    def series(col: str) -> None:
        return None

    def col(self, col: str) -> str:
        if self.code:
            return f"df[{json.dumps(col, ensure_ascii=False)}]"
        if "`" in col:
            raise ConfigError(f"column '{col}' has a backtick, which a pandas query cannot quote; "
                              "use the df[...] form (icpml export --format pandas writes icp_mask(df)) "
                              "or rename the column")
        return f"`{col}`"

    def _fold(self, col: str) -> str:
        return f'{self.col(col)}.astype("string").str.split().str.join(" ").str.casefold()'

    def num(self, col: str, fmt: dict | None) -> str:
        if fmt is None:
            return self.col(col)
        marks = [*(_CURRENCY_MARKS if fmt["currency"] else ()), *(("%",) if fmt["percent"] else ())]
        if fmt["thousands"]:
            marks.append(fmt["thousands"])
        x = f'{self.col(col)}.astype("string")'
        if marks:
            rx = "|".join(re.escape(m) for m in marks)
            x += f".str.replace({json.dumps(rx, ensure_ascii=False)}, \"\", regex=True)"
        if fmt["decimal"] != ".":
            x += f'.str.replace({json.dumps(fmt["decimal"])}, ".", regex=False)'
        rx = f"^({_NUMBER_RX[1:-1]})$"
        return x + f'.str.strip().str.extract({json.dumps(rx)}, expand=False).astype("float")'

    @staticmethod
    def cmp(x: str, op: str, bound: float) -> str:
        return f"({x} {op} {_sqlnum(bound)})"

    def one_of(self, col: str, keys: list[str]) -> str:
        if not keys:
            return self.false()
        return f"{self._fold(col)}.isin({json.dumps(keys, ensure_ascii=False)})"

    def missing(self, col: str, known: list[str] | None = None) -> str:
        if known is not None:
            return f"~{self.one_of(col, known)}"
        return f'({self.col(col)}.isna() | {self._fold(col)}.isin([""]))'

    @staticmethod
    def num_missing(x: str) -> str:
        return f"{x}.isna()"

    @staticmethod
    def all_(parts: list) -> str:
        return parts[0] if len(parts) == 1 else "(" + " & ".join(parts) + ")"

    @staticmethod
    def any_(parts: list) -> str:
        return parts[0] if len(parts) == 1 else "(" + " | ".join(parts) + ")"

    @staticmethod
    def not_(x: str) -> str:
        return f"~({x})"

    none_of = not_

    def false(self) -> str:
        return "(df.index != df.index)" if self.code else "(index != index)"


# ----------------------------------------------------------------------------- criterion
@dataclass(frozen=True)
class Criterion:
    """One condition on one targetable column.

    Parameters
    ----------
    kind : {"icp", "anti_icp"}
        Inclusion (every ICP criterion must hold) or exclusion (any one fires).
    column : str
        The targetable (``columns.features``) column it reads.
    op : str
        ``in``, ``not_in``, ``between`` (inclusive), ``<``, ``<=``, ``>``,
        ``>=``, ``==``, ``is_missing`` (see :data:`OPERATORS`).
    values : tuple of str, default ()
        Category values for ``in`` / ``not_in`` / ``==``.
    low, high : float, optional
        Bounds for numeric operators (``between`` uses both), in the column's
        own units.
    source : str, default "fit_model"
        ``fit_model``, ``churn_model`` or ``hypothesis``.
    also : tuple of Criterion, default ()
        Further conditions on other columns that must hold too: an *interaction*
        such as ``requires_onprem = True and employees < 200`` (empty for most).
    evidence : dict
        Held-out evidence (see :func:`segment_evidence`); not part of equality.

    Notes
    -----
    Category values match a cell when their :func:`icpml.data.spelling_key` agree
    ("saas " meets ``industry in {SaaS}``); missing and blank cells match only
    ``(missing)`` / ``is_missing``. Boolean criteria hold ``("True",)`` / ``("False",)``.

    Examples
    --------
    >>> from icpml.criteria import Criterion
    >>> c = Criterion("icp", "employees", "between", low=150, high=600)
    >>> c.describe()
    '150 <= employees <= 600'
    >>> c.reason(320)
    'employees 320 is inside the 150-600 band'
    """

    kind: Literal["icp", "anti_icp"]
    column: str
    op: Op
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    source: str = "fit_model"
    also: tuple = ()
    evidence: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def parts(self) -> tuple[Criterion, ...]:
        """The single-column conditions this criterion requires (itself alone, or a conjunction)."""
        return (replace(self, also=()), *self.also) if self.also else (self,)

    @property
    def columns(self) -> list[str]:
        """The columns this criterion reads.

        Returns
        -------
        list of str
            Its own column, then those of ``also`` (an interaction reads several).
        """
        return [p.column for p in self.parts]

    # -- the one walk over the operator table ----------------------------------------
    def _column_kind(self, schema: dict | None, s: pd.Series | None = None) -> str:
        """``numeric``, ``boolean`` or ``categorical``: the schema's, else the data's, else the values'."""
        family = OPERATORS[self.op].family
        if family == "numeric":
            return "numeric"
        known = _column_schema(schema, self.column).get("kind")
        if known in ("numeric", "boolean", "categorical"):
            return "categorical" if family == "category" and known == "numeric" else known
        if s is not None and pd.api.types.is_bool_dtype(s):
            return "boolean"
        if family == "missing":
            return "numeric" if s is not None and pd.api.types.is_numeric_dtype(s) else "categorical"
        vals = [str(v) for v in self.values if v != MISSING]
        return "boolean" if vals and set(vals) <= set(_BOOL_VALUES) else "categorical"

    def _render(self, ops, schema: dict | None = None):
        """This criterion in the vocabulary ``ops`` (mask, SQL or pandas); one dispatch per family."""
        if self.also:
            return ops.all_([p._render(ops, schema) for p in self.parts])
        spec = OPERATORS[self.op]
        col = self.column
        info = _column_schema(schema, col)
        kind = self._column_kind(schema, ops.series(col))
        if spec.family == "numeric":
            x = ops.num(col, _number_format(info))
            return ops.all_([ops.cmp(x, cmp, getattr(self, attr)) for cmp, attr in spec.bounds])
        if spec.family == "missing":
            if kind == "numeric":
                return ops.num_missing(ops.num(col, _number_format(info)))
            return ops.missing(col, _spellings(info, True) + _spellings(info, False)
                               if kind == "boolean" else None)
        wanted = [str(v) for v in self.values if v != MISSING]
        with_missing = MISSING in self.values and not spec.negate
        if kind == "boolean":  # to truth values, then to their spellings
            truth = {v == "True" for v in wanted if v in _BOOL_VALUES}
            if spec.negate:
                truth = {True, False} - truth
            keys = sorted({k for t in truth for k in _spellings(info, t)})
            hit = ops.one_of(col, keys)
            known = _spellings(info, True) + _spellings(info, False)
            return ops.any_([hit, ops.missing(col, known)]) if with_missing else hit
        keys = sorted({spelling_key(v) for v in wanted} | {" ".join(v.split()).lower() for v in wanted})
        hit = ops.one_of(col, keys)
        if spec.negate:
            return ops.all_([ops.not_(hit), ops.not_(ops.missing(col))])
        return ops.any_([hit, ops.missing(col)]) if with_missing else hit

    # -- semantics -----------------------------------------------------------------
    def mask(self, df: pd.DataFrame) -> pd.Series:
        """Mark the accounts of ``df`` that meet the condition.

        ``df`` is a coerced account table (numbers as numbers, yes/no as boolean).
        Missing (and blank) cells never meet a condition, except ``is_missing`` and a
        category set holding ``(missing)``; category text is compared spelling-folded.

        Parameters
        ----------
        df : pandas.DataFrame
            Accounts, one per row, holding every column in :attr:`columns`. Not
            modified.

        Returns
        -------
        pandas.Series of bool
            One value per row of ``df``, same index.
        """
        return self._render(_MaskOps(df)).astype(bool)

    @property
    def key(self) -> tuple:
        """Identity without evidence (column, operator, values, bounds, kind; and the parts)."""
        return (self.kind, self.column, self.op, self.values, self.low, self.high,
                tuple(p.key for p in self.also))

    # -- words -----------------------------------------------------------------------
    def _set_words(self, inside: bool = True) -> str:
        word = OPERATORS[self.op].word if inside else ("not in" if OPERATORS[self.op].word == "in" else "in")
        return f"{word} {{{', '.join(map(str, self.values))}}}"

    def describe(self) -> str:
        """The criterion as RevOps would write it, e.g. ``150 <= employees <= 600``.

        Returns
        -------
        str
            Column, operator and value(s) in words; the parts of an interaction joined
            by ``and``. Also the key of the stability shares.
        """
        if self.also:
            return " and ".join(p.describe() for p in self.parts)
        spec, c = OPERATORS[self.op], self.column
        if spec.family == "missing":
            return f"{c} is unknown"
        if spec.family == "numeric":
            (cmp, attr), *rest = spec.bounds
            if rest:
                return f"{_num(getattr(self, attr))} {_MIRROR[cmp]} {c} {rest[0][0]} {_num(getattr(self, rest[0][1]))}"
            return f"{c} {cmp} {_num(getattr(self, attr))}"
        if not spec.negate and len(self.values) == 1:
            v = self.values[0]
            return f"{c} is unknown" if v == MISSING else f"{c} = {v}"
        return f"{c} {self._set_words()}"

    def reason(self, value: Any, hit: bool | None = None) -> str:
        """Why one account meets (or misses) this criterion, in words.

        E.g. ``employees 320 is inside the 150-600 band``, ``cloud provider Azure is
        not in {AWS, GCP}``, ``employees is unknown (not in the 101-950 band)``.

        Parameters
        ----------
        value : Any
            The account's value in :attr:`column` (None / NaN for missing).
        hit : bool, optional
            Whether the account meets the criterion; computed from ``value`` when not
            given (the scorer passes it, having evaluated the criterion on the whole
            table at once).

        Returns
        -------
        str
            One short clause.
        """
        if self.also:  # value is the first column's; the others are named as conditions
            first = self.parts[0].reason(value)
            return " and ".join([first, *(p.describe() for p in self.also)])
        spec, c = OPERATORS[self.op], self.column
        missing = value is None or (not isinstance(value, str) and pd.isna(value)) or (
            isinstance(value, str) and not value.strip())
        if hit is None:
            hit = bool(self.mask(pd.DataFrame({c: [value]})).iloc[0])
        if spec.family == "missing":
            return f"{c} is unknown" if hit else f"{c} is known ({_shown(value)})"
        if missing and not hit:
            if self.op == "between":
                return f"{c} is unknown (not in the {_num(self.low)}-{_num(self.high)} band)"
            if spec.family == "numeric":
                return f"{c} is unknown (does not meet {self.describe()})"
            if not spec.negate and len(self.values) == 1:
                return f"{c} is unknown, not {self.values[0]}"
            return f"{c} is unknown (not {self._set_words()})"
        if missing:
            return f"{c} is unknown"
        shown = _shown(value)
        if self.op == "between":
            return f"{c} {shown} is {'inside' if hit else 'outside'} the {_num(self.low)}-{_num(self.high)} band"
        if spec.family == "numeric":
            return f"{c} {shown} {'meets' if hit else 'misses'} {self.describe()}"
        if not spec.negate and len(self.values) == 1:
            return f"{c} is {shown}" + ("" if hit else f", not {self.values[0]}")
        return f"{c} {shown} is {self._set_words(inside=hit)}"

    # -- exports ---------------------------------------------------------------------
    def sql_expression(self, schema: dict | None = None, dialect: str | None = None) -> sqlx.Expression:
        """This criterion as a sqlglot boolean expression over the raw table (see :meth:`to_sql`).

        Parameters
        ----------
        schema : dict, optional
            The column schema (``CriteriaSet.schema``); empty or None: plain types.
        dialect : str, optional
            Any sqlglot dialect; default :data:`DEFAULT_DIALECT`.

        Returns
        -------
        sqlglot.expressions.Expression
            The expression tree, to be rendered with ``.sql(dialect=...)`` or combined.

        Raises
        ------
        ValueError
            An unknown dialect.
        """
        return self._render(_SqlOps(dialect), schema)

    def to_sql(self, schema: dict | None = None, dialect: str | None = None) -> str:
        """A SQL boolean expression selecting the rows :meth:`mask` marks on the coerced table.

        Categories and yes/no cells compare spelling-folded text
        (``LOWER(TRIM(...)) IN ('saas', ...)``), so a text yes/no column and a real
        BOOLEAN both work; numbers the source writes as ``"$1,234.50"`` are cleaned
        before the cast. NULL never matches (except ``is_missing``). The expression is
        built once with sqlglot and rendered per dialect.

        Parameters
        ----------
        schema : dict, optional
            The column schema (``CriteriaSet.schema``); empty or None: plain types.
        dialect : str, optional
            Any sqlglot dialect (duckdb, sqlite, postgres, snowflake, ...); default
            :data:`DEFAULT_DIALECT`.

        Returns
        -------
        str
            A WHERE-clause body.

        Raises
        ------
        ValueError
            An unknown dialect.
        """
        return self.sql_expression(schema, dialect).sql(dialect=dialect or DEFAULT_DIALECT)

    def to_pandas(self, schema: dict | None = None, *, code: bool = False) -> str:
        """A pandas boolean expression over the raw table as ``pd.read_csv`` reads it.

        Parameters
        ----------
        schema : dict, optional
            The column schema (``CriteriaSet.schema``); empty or None: plain types.
        code : bool, default False
            False: text for ``DataFrame.query`` / ``DataFrame.eval`` (python engine).
            True: a Python expression over ``df["column"]``.

        Returns
        -------
        str
            The expression.

        Raises
        ------
        ConfigError
            With ``code=False``, a column whose name has a backtick (a query cannot
            quote it).
        """
        return self._render(_PandasOps(code), schema)

    def to_dict(self, schema: dict | None = None) -> dict:
        """The criterion as JSON-able data (the ``criteria.json`` entry).

        Parameters
        ----------
        schema : dict, optional
            The column schema used for the ``sql`` and ``pandas`` renderings.

        Returns
        -------
        dict
            The fields (``values`` as a list, ``also`` as a list of dicts when set,
            evidence rounded) plus ``text`` (:meth:`describe`), ``sql`` and ``pandas``
            (``None`` when a column name cannot be written in a pandas query).
        """
        d = asdict(replace(self, also=()))
        d.pop("also")
        if self.also:
            d["also"] = [{k: v for k, v in p.to_dict(schema).items()
                          if k not in ("evidence", "kind", "source", "sql", "pandas")}
                         for p in self.also]
        d["values"] = list(self.values)
        d["text"] = self.describe()
        d["sql"] = self.to_sql(schema)
        d["pandas"] = _pandas_or_none(self, schema)
        d["evidence"] = _round(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Criterion:
        """Rebuild a criterion from :meth:`to_dict`'s output.

        Parameters
        ----------
        d : dict
            A ``criteria.json`` entry; ``text``, ``sql`` and ``pandas`` are ignored.

        Returns
        -------
        Criterion
            Equal to the criterion that was written (evidence as stored, rounded).
        """
        known = {k: d[k] for k in ("kind", "column", "op", "low", "high", "source") if k in d}
        also = tuple(cls.from_dict({"kind": d.get("kind", "icp"), "source": d.get("source", "fit_model"),
                                    **p}) for p in d.get("also", ()))
        return cls(values=tuple(d.get("values", ())), evidence=d.get("evidence", {}), also=also,
                   **known)


def _pandas_or_none(c: Criterion, schema: dict | None) -> str | None:
    try:
        return c.to_pandas(schema)
    except ConfigError:
        return None


def _as_category(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean").astype("string").fillna(MISSING)
    return s.astype("string").fillna(MISSING)


def _shown(value: Any) -> str:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
        return _num(value)
    return str(value)


def _num(x: float) -> str:
    if x is None:
        return "?"
    x = float(x)
    if x.is_integer():
        return f"{int(x):,}" if abs(x) >= 10_000 else str(int(x))
    return f"{x:.4g}"


def _sqlnum(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _round(obj: Any, nd: int = 6) -> Any:
    """Round floats (and NaN -> None) recursively so JSON output is byte-stable."""
    if isinstance(obj, dict):
        return {k: _round(v, nd) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, nd) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else round(float(obj), nd)
    return obj


# ----------------------------------------------------------------------------- evidence
def _fisher_greater(a_pos: int, a_n: int, b_pos: int, b_n: int) -> float:
    """One-sided Fisher p-value that the rate in A exceeds the rate in B."""
    if a_n == 0 or b_n == 0:
        return 1.0
    return float(stats.fisher_exact([[a_pos, a_n - a_pos], [b_pos, b_n - b_pos]],
                                    alternative="greater").pvalue)


def segment_evidence(mask: pd.Series, is_best: pd.Series, churned: pd.Series | None, *,
                     is_worst: pd.Series | None = None, n_bootstrap: int = 500, seed: int = 0,
                     side: str = "include") -> dict:
    """Evidence of a segment (a boolean mask over accounts) on some accounts.

    The rates are shares of the accounts given (held-out rows in discovery); the
    lift is the segment's best rate over the base rate, with a percentile
    bootstrap interval; ``wracc`` is the weighted relative accuracy of subgroup
    discovery (Lavrac et al. 2004), ``coverage * (best_rate - base_rate)``; the
    p-value is a one-sided Fisher exact test (scipy) of the 2x2 table.

    Parameters
    ----------
    mask : pandas.Series of bool
        Accounts in the segment.
    is_best : pandas.Series of bool
        Best-cohort accounts (middle and worst are False), aligned with ``mask``.
    churned : pandas.Series of bool, optional
        Whether each account churned; adds ``churn_inside`` and ``churn_outside``.
    is_worst : pandas.Series of bool, optional
        Worst-cohort membership; adds ``worst_rate`` and ``worst_lift``.
    n_bootstrap : int, default 500
        Resamples of the lift interval.
    seed : int, default 0
        Seed of the bootstrap.
    side : {"include", "exclude", "churn"}
        Which one-sided test gives ``p_value``: the segment's best rate is
        higher (include) or lower (exclude) than the rest's, or its churn rate
        is higher (churn).

    Returns
    -------
    dict
        ``n`` and ``n_covered`` (counts), ``coverage``, ``best_rate``,
        ``best_rate_outside``, ``base_rate``, ``best_wrongly_excluded`` (shares
        0-1), ``lift`` and ``lift_ci`` (``[low, high]``, ratios), ``wracc``,
        ``p_value``, and the optional churn / worst figures above. Undefined
        figures (empty segment) are NaN.
    """
    m = mask.to_numpy(bool)
    b = is_best.to_numpy(bool)
    n = len(m)
    k = int(m.sum())
    base = float(b.mean()) if n else float("nan")
    rate = float(b[m].mean()) if k else float("nan")
    out_rate = float(b[~m].mean()) if n - k else float("nan")
    ev: dict = {
        "n": n,
        "n_covered": k,
        "coverage": k / n if n else float("nan"),
        "best_rate": rate,
        "best_rate_outside": out_rate,
        "base_rate": base,
        "lift": rate / base if k and base > 0 else float("nan"),
        "wracc": (k / n) * (rate - base) if k and n else float("nan"),
        "best_wrongly_excluded": float(m[b].mean()) if b.any() else float("nan"),
    }
    if is_worst is not None:
        w = is_worst.to_numpy(bool)
        ev["worst_rate"] = float(w[m].mean()) if k else float("nan")
        ev["worst_lift"] = (ev["worst_rate"] / w.mean()) if k and w.any() else float("nan")
    ch = None
    if churned is not None:
        ch = churned.to_numpy(bool)
        ev["churn_inside"] = float(ch[m].mean()) if k else float("nan")
        ev["churn_outside"] = float(ch[~m].mean()) if n - k else float("nan")
    if side == "include":
        ev["p_value"] = _fisher_greater(int(b[m].sum()), k, int(b[~m].sum()), n - k)
    elif side == "exclude":
        ev["p_value"] = _fisher_greater(int(b[~m].sum()), n - k, int(b[m].sum()), k)
    else:
        ev["p_value"] = (_fisher_greater(int(ch[m].sum()), k, int(ch[~m].sum()), n - k)
                         if ch is not None else float("nan"))
    lo, hi = _bootstrap_lift(m, b, n_bootstrap, seed)
    ev["lift_ci"] = [lo, hi]
    return ev


def _bootstrap_lift(m: np.ndarray, b: np.ndarray, n_boot: int, seed: int,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of lift = P(best | segment) / P(best).

    ``m`` (in the segment) and ``b`` (best cohort) are boolean arrays over the same n
    accounts. Lift depends on the rows only through the counts of the four cells
    (segment x best), so resampling n rows with replacement is drawing those counts
    from a multinomial(n, observed cell shares): the same bootstrap distribution as
    indexing rows, in O(n) once plus O(n_boot) (no n_boot x n matrix: at 1,000,000
    accounts that matrix took 1.7 GB). Resamples whose lift is undefined (no segment
    row or no best row drawn) are dropped; with fewer than half left the interval is
    (nan, nan). Seeded: the same inputs give the same interval.
    """
    n = len(m)
    if n == 0 or m.sum() == 0 or b.sum() == 0:
        return float("nan"), float("nan")
    m, b = np.asarray(m, bool), np.asarray(b, bool)
    both = int((m & b).sum())
    cells = np.array([both, int(m.sum()) - both, int(b.sum()) - both, 0], dtype=np.int64)
    cells[3] = n - cells[:3].sum()
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, cells / n, size=n_boot)  # (n_boot, 4): mb, m only, b only, neither
    seg = draws[:, 0] + draws[:, 1]
    best = draws[:, 0] + draws[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = (draws[:, 0] / seg) / (best / n)
    lift = lift[np.isfinite(lift)]
    if len(lift) < n_boot / 2:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(lift, a)), float(np.quantile(lift, 1 - a))


# ----------------------------------------------------------------------------- candidates
def _tau(s: np.ndarray) -> float:
    return max(0.02, 0.1 * float(np.mean(np.abs(s)))) if len(s) else 0.02


def _min_count(cfg: CriteriaConfig, n: int) -> int:
    """The fewest accounts a criterion may cover among ``n``: ``min_support_share`` of them,
    and never under 5."""
    return max(5, int(math.ceil(cfg.min_support_share * n)))


def _roundest(lo: float, hi: float, *, include_lo: bool, include_hi: bool) -> float:
    """The roundest number t in the gap between two observed values (lo, hi).

    Any threshold in the gap classifies the observed accounts the same way, so we
    show the one a person would write: 600 rather than 601.5.
    """
    if hi <= lo:
        return float(hi)

    def ok(t: float) -> bool:
        return (t > lo or (include_lo and t == lo)) and (t < hi or (include_hi and t == hi))

    span = hi - lo
    for exp in range(int(math.floor(math.log10(max(abs(hi), abs(lo), 1e-12)))), -7, -1):
        step = 10.0 ** exp
        for mult in (10, 5, 2, 1):  # prefer multiples of 10, then 5, 2, 1 of this step
            q = step * mult
            t = math.ceil(lo / q) * q
            if not ok(t):
                t += q
            if ok(t):
                return float(round(t, 10))
        if step < span / 1000:
            break
    return float((lo + hi) / 2)


def _stump(x: np.ndarray, s: np.ndarray) -> int | None:
    """Index i maximizing the SHAP difference when splitting sorted x between i-1 and i."""
    n = len(x)
    if n < 2:
        return None
    cs = np.cumsum(s)
    total = cs[-1]
    best_i, best_gain = None, -np.inf
    for i in range(1, n):
        if x[i] == x[i - 1]:
            continue
        left, right = cs[i - 1] / i, (total - cs[i - 1]) / (n - i)
        gain = i * (n - i) * (left - right) ** 2  # between-group sum of squares (times n)
        if gain > best_gain:
            best_gain, best_i = gain, i
    return best_i


#: A numeric column with at most this many distinct values is read value by value (a code).
_MAX_CODE_VALUES = 5


def _numeric_candidates(col: str, x: pd.Series, s: pd.Series, sign: int, kind: str,
                        source: str, min_count: int, n_bins: int = 20) -> list[Criterion]:
    """Ranges of ``col`` where SHAP has sign ``sign`` (see module docstring, step 1)."""
    ok = x.notna().to_numpy()
    xv = x.to_numpy(float)[ok]
    sv = s.to_numpy(float)[ok]
    out: list[Criterion] = []
    if len(xv) < 2 * min_count or np.ptp(xv) == 0:
        return out
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
    if kind == "numeric" and x.isna().sum() >= min_count:
        ms = s[x.isna()].to_numpy(float)
        if ms.mean() * sign > tau:
            crit_kind = "icp" if (sign > 0 and source == "fit_model") else "anti_icp"
            out.append(Criterion(crit_kind, col, "is_missing", source=source))
    return out


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
    """Category sets of ``col`` whose mean SHAP has sign ``sign``."""
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
    names = [str(cats[i]) for i in good]
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
#: Categories per column tried by the pair search (the most frequent ones).
_PAIR_MAX_CATEGORIES = 12
#: Pairs one search hands to selection (largest WRAcc first, one per column pair).
_PAIR_KEEP = 3
#: A pair is an interaction when neither part alone reaches this share of its excess lift.
_PAIR_FLAT = 1 / 3
#: ... and the pair's own lift, on every row, is at least this.
_PAIR_MIN_LIFT = 1.25


def _pair_atoms(col: str, x: pd.Series, kind: str, min_k: int) -> list[Criterion]:
    """Single conditions on one column tried by the pair search.

    Numeric: one-sided cuts ``<= t`` and ``>= t`` at the deciles (each bound the roundest
    number between the two observed values it separates); a code (at most
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
        for i in cuts:
            lo, hi = float(distinct[i - 1]), float(distinct[i])
            out.append(Criterion("icp", col, "<=",
                                 high=_roundest(lo, hi, include_lo=True, include_hi=False)))
            out.append(Criterion("icp", col, ">=",
                                 low=_roundest(lo, hi, include_lo=False, include_hi=True)))
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
                        keep: int = _PAIR_KEEP) -> tuple[list[Criterion], int]:
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
    * the ``keep`` best pairs by WRAcc get each part's bounds or category set re-chosen
      given the other part (:func:`_fit_pair`).

    ``rows`` should be rows the selection will not test on (the model's training rows),
    so the selection's test of a pair is not biased by its search. Returns the pairs (ICP
    criteria with one ``also`` part, source ``fit_model``) and the number of column pairs
    searched (each one hypothesis, for the multiple-testing correction).
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
    atoms: dict[str, tuple[list[Criterion], np.ndarray, np.ndarray]] = {}
    for col in cols:
        cand = _pair_atoms(col, rows[col][clear], kinds.get(col, "categorical"), min_k)
        if cand:
            masks = np.stack([c.mask(rows).to_numpy(bool) for c in cand]).astype(float)
            # excess lift of each part alone, on every row
            alone = masks @ ya / np.maximum(masks.sum(1), 1) / base_all - 1
            atoms[col] = (cand, masks, alone)
    scored: list[tuple[float, str, str, Criterion, Criterion]] = []
    searched = 0
    names = [c for c in cols if c in atoms]
    for i, ca in enumerate(names):
        a_c, a_m, a_ex = atoms[ca]
        for cb in names[i + 1:]:
            searched += 1
            b_c, b_m, b_ex = atoms[cb]
            cnt = a_m[:, clear] @ b_m[:, clear].T
            pos = (a_m[:, clear] * yc) @ b_m[:, clear].T
            cnt_all = a_m @ b_m.T
            with np.errstate(invalid="ignore", divide="ignore"):
                ex = pos / cnt / base - 1
                ex_all = ((a_m * ya) @ b_m.T) / cnt_all / base_all - 1
            wracc = (pos - base * cnt) / n
            ok = ((cnt >= min_k) & (n - cnt >= min_k) & (ex > 0)
                  & (ex_all >= _PAIR_MIN_LIFT - 1) & (a_ex[:, None] < _PAIR_FLAT * ex_all)
                  & (b_ex[None, :] < _PAIR_FLAT * ex_all))
            if not ok.any():
                continue
            w = np.where(ok, wracc, -np.inf)
            ia, ib = divmod(int(np.argmax(w)), w.shape[1])
            scored.append((float(w[ia, ib]), ca, cb, a_c[ia], b_c[ib]))
    scored.sort(key=lambda t: (-t[0], t[1], t[2]))
    out = []
    every = np.ones(len(rows), dtype=bool)
    for _, _, _, a, b in scored[:keep]:
        # fit the parts, take the best cell of the 2x2 they form, fit again
        pair = _fit_pair(_make_pair([a, b], Criterion("icp", a.column, "in")), rows, y, every,
                         min_k)
        a, b = _best_cell(*pair.parts, rows, y, min_k)
        pair = _fit_pair(_make_pair([a, b], pair), rows, y, every, min_k)
        if _still_interacts(pair, rows, ya, base_all):
            out.append(pair)
    return list({c.key: c for c in out}.values()), searched


def _still_interacts(pair: Criterion, rows: pd.DataFrame, y: np.ndarray, base: float) -> bool:
    """Whether a pair whose parts were re-fitted is still an interaction on ``rows``: lift
    at least :data:`_PAIR_MIN_LIFT`, and neither part alone reaching :data:`_PAIR_FLAT` of
    its excess lift. Fitting a part given the other can turn it into a main effect (a
    size band that helps everywhere); such a pair would stand for a column the greedy
    finds alone, and a fold that picks it would disagree with the folds that pick the
    column itself."""
    def excess(m: np.ndarray) -> float:
        return float(y[m].mean() / base - 1) if m.any() and base > 0 else 0.0

    both = excess(pair.mask(rows).to_numpy(bool))
    return both >= _PAIR_MIN_LIFT - 1 and all(
        excess(part.mask(rows).to_numpy(bool)) < _PAIR_FLAT * both for part in pair.parts)


# ----------------------------------------------------------------------------- set
@dataclass
class CriteriaSet:
    """The ICP (inclusions, all must hold) and the anti-ICP (exclusions, any fires).

    Parameters
    ----------
    icp, anti_icp : list of Criterion
        Inclusion and exclusion criteria, in selection order.
    icp_evidence, anti_evidence : dict
        Held-out evidence of the combined segments (see :func:`segment_evidence`).
    unconfirmed : list of Criterion
        Selected on the selection split but not confirmed on held-out data.
    verdict : dict
        ``icp_found`` (bool), ``tentative`` (bool, after a stability run) and
        ``message`` in words.
    warnings : list of str
        Caveats of the criteria stage, in words.
    tiers : dict
        The tier rules derived from the criteria (see :mod:`icpml.scoring`).
    meta : dict
        Model and data provenance written to ``criteria.json``; ``stability`` and
        ``fidelity`` when measured.
    schema : dict
        The column schema learned at discovery (``{"version": 1, "columns": {...}}``:
        kind, number format, yes/no spellings, categories); the exports read it to
        match the raw table's spellings. Empty: plain types (categories still folded).

    See Also
    --------
    CriteriaSet.to_frame : The criteria with their evidence as a table.
    CriteriaSet.to_sql : The ICP and anti-ICP as SQL WHERE clauses.
    """

    icp: list[Criterion] = field(default_factory=list)
    anti_icp: list[Criterion] = field(default_factory=list)
    icp_evidence: dict = field(default_factory=dict)
    anti_evidence: dict = field(default_factory=dict)
    unconfirmed: list[Criterion] = field(default_factory=list)
    verdict: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    tiers: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    schema: dict = field(default_factory=dict)

    # -- semantics ---------------------------------------------------------------------
    def icp_mask(self, df: pd.DataFrame) -> pd.Series:
        """Mark the accounts in the ICP: every inclusion holds and no exclusion fires.

        Parameters
        ----------
        df : pandas.DataFrame
            Coerced accounts, one per row. Not modified.

        Returns
        -------
        pandas.Series of bool
            Same index as ``df``; all False when there is no ICP criterion.
        """
        if not self.icp:
            return pd.Series(False, index=df.index)
        m = pd.Series(True, index=df.index)
        for c in self.icp:
            m &= c.mask(df)
        return m & ~self.anti_mask(df)

    def anti_mask(self, df: pd.DataFrame) -> pd.Series:
        """Mark the accounts in the anti-ICP: any exclusion fires.

        Parameters
        ----------
        df : pandas.DataFrame
            Coerced accounts, one per row. Not modified.

        Returns
        -------
        pandas.Series of bool
            Same index as ``df``; all False when there is no exclusion.
        """
        m = pd.Series(False, index=df.index)
        for c in self.anti_icp:
            m |= c.mask(df)
        return m

    @property
    def columns(self) -> list[str]:
        """The columns any criterion reads.

        Returns
        -------
        list of str
            Sorted, without repeats.
        """
        return sorted({col for c in self.icp + self.anti_icp for col in c.columns})

    # -- exports -------------------------------------------------------------------------
    def _combined(self, ops) -> dict:
        """ICP (every inclusion, no exclusion) and anti-ICP (any exclusion) in ``ops``."""
        anti = ops.any_([c._render(ops, self.schema) for c in self.anti_icp]) if self.anti_icp else None
        if not self.icp:
            icp = ops.false()
        else:
            inc = ops.all_([c._render(ops, self.schema) for c in self.icp])
            icp = inc if anti is None else ops.all_([inc, ops.none_of(anti)])
        return {"icp": icp, "anti_icp": ops.false() if anti is None else anti}

    def to_sql(self, dialect: str | None = None) -> dict[str, str]:
        """The ICP and the anti-ICP as SQL WHERE-clause bodies over the raw table.

        Each criterion is rendered as in :meth:`Criterion.to_sql`, reading
        :attr:`schema`. The ICP is every inclusion and no exclusion; a NULL
        comparison never meets a criterion and never fires an exclusion (``NOT
        COALESCE(anti, FALSE)``), as :meth:`icp_mask` decides on the coerced table.

        Parameters
        ----------
        dialect : str, optional
            Any sqlglot dialect (duckdb, sqlite, postgres, snowflake, ...); default
            :data:`DEFAULT_DIALECT`.

        Returns
        -------
        dict of str to str
            ``{"icp": ..., "anti_icp": ...}``; ``FALSE`` for an empty side.

        Raises
        ------
        ValueError
            An unknown dialect.

        Examples
        --------
        >>> import duckdb, pandas as pd
        >>> from icpml.criteria import CriteriaSet, Criterion
        >>> cs = CriteriaSet(
        ...     icp=[Criterion("icp", "employees", "between", low=150, high=600),
        ...          Criterion("icp", "industry", "in", values=("SaaS", "FinTech"))],
        ...     anti_icp=[Criterion("anti_icp", "requires_onprem", "==", values=("True",))])
        >>> accounts = pd.DataFrame({"account_id": ["a", "b", "c", "d"],
        ...                          "employees": [200, 1000, 300, 450],
        ...                          "industry": ["saas ", "SaaS", "FinTech", None],
        ...                          "requires_onprem": ["no", "no", "yes", "no"]})
        >>> where = cs.to_sql()
        >>> duckdb.sql(f"SELECT account_id FROM accounts WHERE {where['icp']}").fetchall()
        [('a',)]
        >>> duckdb.sql(f"SELECT account_id FROM accounts WHERE {where['anti_icp']}").fetchall()
        [('c',)]
        """
        ops = _SqlOps(dialect)
        return {k: v.sql(dialect=ops.dialect) for k, v in self._combined(ops).items()}

    def to_pandas(self, *, code: bool = False) -> dict[str, str]:
        """The ICP and the anti-ICP as pandas expressions over the raw table.

        The table as ``pd.read_csv`` reads it (see :meth:`Criterion.to_pandas`); the
        same rows as :meth:`to_sql` selects.

        Parameters
        ----------
        code : bool, default False
            False: ``DataFrame.query`` text (python engine). True: Python
            expressions over ``df[...]``.

        Returns
        -------
        dict of str to str
            ``{"icp": ..., "anti_icp": ...}``.

        Raises
        ------
        ConfigError
            With ``code=False``, naming a column whose backtick a query cannot quote.

        Examples
        --------
        >>> import pandas as pd
        >>> from icpml.criteria import CriteriaSet, Criterion
        >>> cs = CriteriaSet(icp=[Criterion("icp", "employees", ">=", low=150)],
        ...                  anti_icp=[Criterion("anti_icp", "requires_onprem", "==", values=("True",))])
        >>> df = pd.DataFrame({"employees": [200, 90, 300], "requires_onprem": ["no", "no", "yes"]})
        >>> df.query(cs.to_pandas()["icp"], engine="python").index.tolist()
        [0]
        >>> eval(cs.to_pandas(code=True)["anti_icp"]).tolist()
        [False, False, True]
        """
        return self._combined(_PandasOps(code))

    def to_dict(self) -> dict:
        """The criteria as JSON-able data: the content of ``criteria.json``.

        Returns
        -------
        dict
            ``schema_version``, ``verdict``, ``icp`` and ``anti_icp`` (each with
            ``criteria``, combined ``evidence``, ``sql``, ``pandas``, ``pandas_code``),
            ``unconfirmed``, ``tiers``, ``warnings``, ``meta``, ``schema``, and
            ``pandas_note`` when a pandas query cannot be written; floats rounded to 6
            digits. :meth:`from_dict` reads it back.
        """
        sql = self.to_sql()
        try:
            pandas, note = self.to_pandas(), None
        except ConfigError as err:
            pandas, note = {"icp": None, "anti_icp": None}, str(err)
        code = self.to_pandas(code=True)
        out = {
            "schema_version": SCHEMA_VERSION,
            "verdict": self.verdict,
            "icp": {"criteria": [c.to_dict(self.schema) for c in self.icp], "evidence": self.icp_evidence,
                    "sql": sql["icp"], "pandas": pandas["icp"], "pandas_code": code["icp"]},
            "anti_icp": {"criteria": [c.to_dict(self.schema) for c in self.anti_icp],
                         "evidence": self.anti_evidence, "sql": sql["anti_icp"],
                         "pandas": pandas["anti_icp"], "pandas_code": code["anti_icp"]},
            "unconfirmed": [c.to_dict(self.schema) for c in self.unconfirmed],
            "tiers": self.tiers,
            "warnings": list(self.warnings),
            "meta": self.meta,
            "schema": self.schema,
        }
        if note:
            out["pandas_note"] = note
        return _round(out)

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys, rounded floats, no timestamps).

        Returns
        -------
        str
            :meth:`to_dict` as indented JSON ending in a newline.
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_frame(self) -> pd.DataFrame:
        """One row per criterion with its held-out evidence: the review table.

        ICP criteria come first, then anti-ICP criteria, each in selection order.
        The figures are copied from :attr:`Criterion.evidence` (see
        :func:`segment_evidence`) and from the stability result in
        ``meta["stability"]`` (:func:`icpml.stability.criteria_stability`); a
        figure that was not measured (no churn column, no stability run, a
        hypothesis not yet evaluated) is missing (NaN / ``<NA>``).

        Returns
        -------
        pandas.DataFrame
            ``len(icp) + len(anti_icp)`` rows, default index, with the columns

            - ``side`` : ``"ICP"`` (inclusion, all must hold) or ``"anti-ICP"``
              (exclusion, any one fires);
            - ``criterion`` : the criterion in words (:meth:`Criterion.describe`);
            - ``columns`` : the column(s) it reads, comma-separated (an
              interaction names several);
            - ``kind`` : the column kind, ``numeric``, ``categorical`` or
              ``boolean`` (of the first column for an interaction);
            - ``source`` : ``fit_model``, ``churn_model`` or ``hypothesis``;
            - ``n_covered`` : held-out accounts in the segment (a count, ``Int64``);
            - ``coverage`` : share of held-out accounts in the segment (0-1);
            - ``best_rate`` : share of the segment in the best cohort (0-1);
            - ``lift``, ``lift_ci_low``, ``lift_ci_high`` : best rate over the base
              rate, with its 95% bootstrap interval (ratio; 1 = average);
            - ``churn_inside``, ``churn_outside`` : churn rate in and outside the
              segment (0-1);
            - ``best_wrongly_excluded`` : share of best-cohort accounts inside
              the segment (0-1), the cost of an exclusion;
            - ``q_value`` : Benjamini-Hochberg adjusted p-value across criteria;
            - ``stability`` : share of bootstrap refits in which a matching
              criterion reappeared (0-1);
            - ``tentative`` : True when that share is below
              ``criteria.min_stability`` (nullable boolean, ``<NA>`` without a
              stability run).

        Examples
        --------
        >>> from icpml.criteria import CriteriaSet, Criterion
        >>> cs = CriteriaSet(icp=[Criterion("icp", "employees", "between", low=150, high=600,
        ...                                 evidence={"coverage": 0.3, "lift": 1.8,
        ...                                           "lift_ci": [1.4, 2.2]})])
        >>> cs.to_frame()[["side", "criterion", "kind", "coverage", "lift", "lift_ci_low"]]
          side                criterion     kind  coverage  lift  lift_ci_low
        0  ICP  150 <= employees <= 600  numeric       0.3   1.8          1.4
        """
        stab = self.meta.get("stability") or {}
        per = stab.get("per_criterion") or {}
        unstable = set(stab.get("unstable") or ())
        rows = []
        for side, crits in (("ICP", self.icp), ("anti-ICP", self.anti_icp)):
            for c in crits:
                ev, name = c.evidence, c.describe()
                ci = ev.get("lift_ci") or [np.nan, np.nan]
                rows.append({
                    "side": side, "criterion": name, "columns": ", ".join(c.columns),
                    "kind": c._column_kind(self.schema), "source": c.source,
                    "n_covered": ev.get("n_covered", np.nan), "coverage": ev.get("coverage", np.nan),
                    "best_rate": ev.get("best_rate", np.nan), "lift": ev.get("lift", np.nan),
                    "lift_ci_low": ci[0], "lift_ci_high": ci[1],
                    "churn_inside": ev.get("churn_inside", np.nan),
                    "churn_outside": ev.get("churn_outside", np.nan),
                    "best_wrongly_excluded": ev.get("best_wrongly_excluded", np.nan),
                    "q_value": ev.get("q_value", np.nan),
                    "stability": per.get(name, np.nan) if per else np.nan,
                    "tentative": (name in unstable) if per else pd.NA,
                })
        cols = ["side", "criterion", "columns", "kind", "source", "n_covered", "coverage",
                "best_rate", "lift", "lift_ci_low", "lift_ci_high", "churn_inside",
                "churn_outside", "best_wrongly_excluded", "q_value", "stability", "tentative"]
        out = pd.DataFrame(rows, columns=cols)
        num = cols[5:16]
        out[num] = out[num].astype(float)
        out["n_covered"] = out["n_covered"].astype("Int64")
        out["tentative"] = out["tentative"].astype("boolean")
        return out

    @classmethod
    def from_dict(cls, d: dict) -> CriteriaSet:
        """Rebuild a criteria set from :meth:`to_dict`'s output.

        Parameters
        ----------
        d : dict
            The content of a ``criteria.json``.

        Returns
        -------
        CriteriaSet
            The criteria, evidence, verdict, tiers, meta and schema as stored.

        Raises
        ------
        ValueError
            ``d`` was written with another major schema version.
        """
        if str(d.get("schema_version", "")).split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"criteria schema {d.get('schema_version')} is not supported "
                             f"(this icpml reads {SCHEMA_VERSION})")
        return cls(
            icp=[Criterion.from_dict(c) for c in d["icp"]["criteria"]],
            anti_icp=[Criterion.from_dict(c) for c in d["anti_icp"]["criteria"]],
            icp_evidence=d["icp"].get("evidence", {}),
            anti_evidence=d["anti_icp"].get("evidence", {}),
            unconfirmed=[Criterion.from_dict(c) for c in d.get("unconfirmed", [])],
            verdict=d.get("verdict", {}), warnings=d.get("warnings", []),
            tiers=d.get("tiers", {}), meta=d.get("meta", {}), schema=d.get("schema") or {},
        )


# ----------------------------------------------------------------------------- refine
def _refine_bound(x: np.ndarray, y: np.ndarray, bound: float, *, upper: bool,
                  width: float = 0.15) -> float:
    """Move one numeric bound to the best outcome split near it (a stump on ``y``).

    Only accounts whose rank lies within ``width`` of the bound's rank are used,
    so the refinement stays local to the edge the model found. The result is
    the roundest number in the gap between the two observed values it separates.
    """
    ok = np.isfinite(x)
    x, y = x[ok], y[ok].astype(float)
    if len(x) < 20:
        return bound
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    r = np.searchsorted(x, bound) / len(x)
    lo_r, hi_r = max(r - width, 0.0), min(r + width, 1.0)
    a, z = int(lo_r * len(x)), int(np.ceil(hi_r * len(x)))
    xs, ys = x[a:z], y[a:z]
    i = _stump(xs, ys)
    if i is None:
        return bound
    if upper:  # x <= t keeps xs[:i]
        return _roundest(xs[i - 1], xs[i], include_lo=True, include_hi=False)
    return _roundest(xs[i - 1], xs[i], include_lo=False, include_hi=True)


def refine_numeric(c: Criterion, rows: pd.DataFrame, cohort: pd.Series) -> Criterion:
    """Refine a numeric criterion's bounds on outcome labels (see :func:`_refine_bound`).

    ICP bounds split best from the rest; exclusion bounds split worst from the rest.

    Parameters
    ----------
    c : Criterion
        The criterion; returned unchanged unless numeric.
    rows : pandas.DataFrame
        Coerced accounts to refine on (train + selection, never held-out rows).
    cohort : pandas.Series
        Cohort of each row of ``rows``.

    Returns
    -------
    Criterion
        ``c`` with moved ``low`` / ``high`` (evidence unchanged).
    """
    if c.also:  # each numeric part on the accounts that meet the other parts
        parts = list(c.parts)
        for i, part in enumerate(parts):
            others = np.logical_and.reduce([q.mask(rows).to_numpy(bool) for j, q in enumerate(parts)
                                            if j != i])
            parts[i] = refine_numeric(part, rows[others], cohort[others])
        return replace(parts[0], also=tuple(parts[1:]))
    if c.op not in ("between", ">=", ">", "<", "<="):
        return c
    x = pd.to_numeric(rows[c.column], errors="coerce").to_numpy(float)
    y = ((cohort == BEST) if c.kind == "icp" else (cohort == WORST)).to_numpy(bool)
    low, high = c.low, c.high
    if low is not None:
        low = _refine_bound(x, y, low, upper=False)
    if high is not None:
        if c.op == "<":
            # "x < t": the same split as "x <= t'" with t the next round number up
            t = _refine_bound(x, y, high, upper=False)
            high = t
        else:
            high = _refine_bound(x, y, high, upper=True)
    if low is not None and high is not None and low > high:
        return c
    return replace(c, low=low, high=high)


def _band_stat(pos: np.ndarray, cnt: np.ndarray, total_pos: float, n: int) -> np.ndarray:
    """Pearson chi-square of a 2x2 table (inside vs outside, best vs rest), vectorised."""
    out_pos, out_n = total_pos - pos, n - cnt
    p = total_pos / n
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = pos / cnt - out_pos / out_n
        stat = cnt * out_n / n * diff ** 2 / (p * (1 - p))
    return np.where((cnt > 0) & (out_n > 0) & (diff > 0), stat, -np.inf)


def _chi2_in(c: Criterion, rows: pd.DataFrame, y: np.ndarray, seg: np.ndarray) -> float:
    """Pearson chi-square of ``c`` (inside vs outside) against ``y`` among ``seg`` (0 when ``c``
    does not raise the rate)."""
    m = c.mask(rows).to_numpy(bool)[seg]
    yy = np.asarray(y, dtype=bool)[seg]
    n = len(yy)
    if n == 0:
        return -np.inf
    return max(0.0, float(_band_stat(np.array([yy[m].sum()], float), np.array([m.sum()], float),
                                     float(yy.sum()), n)[0]))


#: How much (chi-square, 1 df at 5%) a second edge must add before a band replaces a one-sided cut.
_EDGE_GAIN = 3.84
#: Edges whose band is within this chi-square of the best one cannot be told apart (about an
#: 85% likelihood interval): the roundest of them is shown (:func:`_round_edge`).
_EDGE_SLACK = 2.0
#: Fewest accounts a band's segment needs before its bounds are fit, and the fewest on the
#: far side of a cut.
_MIN_BAND_ROWS, _MIN_OUTSIDE = 40, 5
_TAIL_SHARE = 0.5


def _round_edge(x: np.ndarray, near: np.ndarray, upper: bool) -> int:
    """The cut position (index into sorted ``x``) of the roundest threshold among near-best cuts.

    ``near`` are cut positions (0 < i < len(x)) whose band is within :data:`_EDGE_SLACK`
    of the best; a lower edge at position i keeps ``x[i:]`` (threshold in
    ``(x[i-1], x[i]]``), an upper edge keeps ``x[:i]`` (threshold in ``[x[i-1], x[i])``).
    The roundest number from the lowest to the highest of them (:func:`_roundest`) is
    mapped back to its position, so noise in the exact change point gives 600, not 688.
    """
    first, last = int(near.min()), int(near.max())
    if upper:
        t = _roundest(x[first - 1], x[last], include_lo=True, include_hi=False)
        return int(np.searchsorted(x, t, side="right"))
    t = _roundest(x[first - 1], x[last], include_lo=False, include_hi=True)
    return int(np.searchsorted(x, t, side="left"))


def _drop_weak_edge(c: Criterion, rows: pd.DataFrame, y: np.ndarray, segment: np.ndarray,
                    bar: float) -> Criterion:
    """``c`` without the edge of its band that adds less than :data:`_EDGE_GAIN` in the segment.

    The model's own band is kept when the data do not clearly prefer other bounds; but an
    edge the data do not support either (a cut at the far tail of a one-sided effect) is
    dropped, by the same rule that lets a second edge into a fitted band, provided the
    one-sided cut itself clears ``bar`` (the scan's chi-square: noise moves nothing).
    """
    if c.op != "between":
        return c
    whole = _chi2_in(c, rows, y, segment)
    one = [(_chi2_in(d, rows, y, segment), i, d) for i, d in enumerate(
        (replace(c, op=">=", high=None), replace(c, op="<=", low=None)))]
    stat, _, d = max(one, key=lambda t: (t[0], -t[1]))
    return d if stat >= max(bar, whole - _EDGE_GAIN) else c


def fit_band(c: Criterion, rows: pd.DataFrame, is_best: np.ndarray, segment: np.ndarray,
             min_k: int, max_cuts: int = 400) -> Criterion:
    """Choose an ICP numeric criterion's bounds for the segment, given the other criteria.

    Among ``rows`` in ``segment`` (every other ICP criterion met, no exclusion), the
    bounds are the cut points that best separate best-cohort accounts from the rest of
    the segment (largest Pearson chi-square of inside vs outside the band, the split a
    depth-2 tree makes): the change points of the best rate, not the tightest interval
    with the most significant lift nor the widest one with the largest F1 (with
    additive effects the accounts just outside a planted band are still above average,
    and F1 / WRAcc would widen the band to take them). A two-sided band replaces the
    best one-sided cut only when its second edge adds a chi-square of at least 3.84 (5%,
    1 df); a one-sided cut replaces "no cut" likewise; and the result replaces the
    model's bounds only when it beats them by the same margin and clears the 5%
    chi-square Bonferroni-corrected for the cut points scanned (noise never moves a
    bound; but an edge of the model's band that adds less than 3.84 is dropped,
    :func:`_drop_weak_edge`). The band keeps at least ``min_k`` accounts (at most a
    quarter of the segment is required), and each cut leaves at least half that many (and
    5) accounts on its far side, so no cut trims a handful of tail accounts.

    The exact change point is noisy (a handful of accounts past a planted 600 decide
    between 600 and 688), so each edge is then shown as the roundest number among the
    cuts whose band's chi-square is within :data:`_EDGE_SLACK` (2.0) of the best, the
    other edge held (:func:`_round_edge`, :func:`_roundest`), if the rounded band still
    is within that slack; otherwise the best cut's own roundest number. Missing values
    never meet the criterion.

    Parameters
    ----------
    c : Criterion
        The ICP criterion whose bounds are chosen.
    rows : pandas.DataFrame
        Coerced accounts (the refinement rows).
    is_best : numpy.ndarray of bool
        Best-cohort membership of each row.
    segment : numpy.ndarray of bool
        Rows meeting every other ICP criterion and no exclusion.
    min_k : int
        Fewest accounts a criterion may cover.
    max_cuts : int, default 400
        Most candidate cut points scanned (evenly spaced among the value changes).

    Returns
    -------
    Criterion
        ``c`` with new bounds; ``c`` unchanged when it is not a numeric ICP
        criterion, the segment has fewer than 40 accounts, or no cut clears
        the bar (the caller's confirmation test then decides whether it stays).
    """
    if c.kind != "icp" or c.also or OPERATORS[c.op].family != "numeric":
        return c
    x_all = pd.to_numeric(rows[c.column], errors="coerce").to_numpy(float)
    seg = segment & np.isfinite(x_all)
    n_seg = int(segment.sum())
    if n_seg < _MIN_BAND_ROWS:
        return c
    min_in = max(_MIN_OUTSIDE, min(min_k, n_seg // 4))
    y_all = np.asarray(is_best, dtype=bool)
    miss_pos = float(y_all[segment & ~np.isfinite(x_all)].sum())
    order = np.argsort(x_all[seg], kind="stable")
    x, y = x_all[seg][order], y_all[seg][order].astype(float)
    m = len(x)
    cs = np.concatenate([[0.0], np.cumsum(y)])
    # cut positions i (x[:i] below, x[i:] above) where the value changes; at most max_cuts
    cuts = np.flatnonzero(x[1:] != x[:-1]) + 1
    if len(cuts) > max_cuts:
        cuts = cuts[np.unique(np.linspace(0, len(cuts) - 1, max_cuts).round().astype(int))]
    lo_i = np.concatenate([[0], cuts])      # band starts at x[lo]
    hi_i = np.concatenate([cuts, [m]])      # band ends before x[hi]
    total = float(cs[-1]) + miss_pos
    cnt = hi_i[None, :] - lo_i[:, None]
    pos = cs[hi_i][None, :] - cs[lo_i][:, None]
    stat = _band_stat(pos, cnt.astype(float), total, n_seg)
    # every cut leaves at least half of min_in (and 5) accounts on its far side: a cut
    # that trims a handful of tail accounts fits noise
    tail = max(_MIN_OUTSIDE, int(_TAIL_SHARE * min_in))
    ok_lo = (lo_i == 0) | (lo_i >= tail)
    ok_hi = (hi_i == m) | (m - hi_i >= tail)
    stat = np.where((cnt >= min_in) & (n_seg - cnt >= _MIN_OUTSIDE) & ok_lo[:, None]
                    & ok_hi[None, :], stat, -np.inf)
    # whole range (only missing values left out), one-sided (an open end) and two-sided
    full = stat[0, -1]
    one_lo, one_hi = stat[:, -1], stat[0, :]
    a = int(np.argmax(one_lo))
    z = int(np.argmax(one_hi))
    one = (one_lo[a], a, len(hi_i) - 1) if one_lo[a] >= one_hi[z] else (one_hi[z], 0, z)
    two_flat = int(np.argmax(stat))
    ta, tz = divmod(two_flat, stat.shape[1])
    scan = float(stats.chi2.isf(0.05 / max(len(cuts), 1), 1))  # the best of many cut points
    best = (full, 0, len(hi_i) - 1)
    if np.isfinite(one[0]) and one[0] >= (full if np.isfinite(full) else 0.0) + _EDGE_GAIN:
        best = one
    if np.isfinite(stat[ta, tz]) and stat[ta, tz] >= best[0] + _EDGE_GAIN and ta > 0 and tz < len(hi_i) - 1:
        best = (stat[ta, tz], ta, tz)
    if best[0] < max(scan, _chi2_in(c, rows, y_all, segment) + _EDGE_GAIN):
        return _drop_weak_edge(c, rows, y_all, segment, scan)  # keep the model's bounds
    top, a, z = best
    lo, hi = int(lo_i[a]), int(hi_i[z])
    if lo == 0 and hi == m:
        return c
    # round each edge within the cuts the data cannot tell from the best one (other edge held)
    bar = top - _EDGE_SLACK
    rlo, rhi = lo, hi
    if lo > 0:
        rlo = _round_edge(x, lo_i[(stat[:, z] >= bar) & (lo_i > 0)], upper=False)
    if hi < m:
        a2 = int(np.searchsorted(lo_i, rlo))
        row = stat[a2] if a2 < len(lo_i) and lo_i[a2] == rlo else stat[a]
        near = hi_i[(row >= bar) & (hi_i < m)]
        rhi = _round_edge(x, near, upper=True) if len(near) else hi
    k_in = rhi - rlo
    if k_in >= min_in and n_seg - k_in >= _MIN_OUTSIDE:
        s_round = _band_stat(np.array([cs[rhi] - cs[rlo]]), np.array([float(k_in)]), total, n_seg)[0]
        if s_round >= bar:
            lo, hi = rlo, rhi
    low = _roundest(x[lo - 1], x[lo], include_lo=False, include_hi=True) if lo > 0 else None
    high = _roundest(x[hi - 1], x[hi], include_lo=True, include_hi=False) if hi < m else None
    if low is not None and high is not None:
        return replace(c, op="between", low=low, high=high)
    if low is not None:
        return replace(c, op=">=", low=low, high=None)
    return replace(c, op="<=", low=None, high=high)


#: Fewer accounts than this in the segment: category sets stay as SHAP proposed them (a
#: ranking of many categories on a few dozen accounts picks noise).
_MIN_SET_ROWS = 60


def fit_set(c: Criterion, rows: pd.DataFrame, is_best: np.ndarray, segment: np.ndarray,
            min_k: int, min_per_value: int = 3) -> Criterion:
    """Choose an ICP category set for the segment, given the other criteria.

    Among ``rows`` in ``segment`` (every other ICP criterion met, no exclusion), the
    categories with at least ``min_per_value`` accounts there are ranked by their best
    rate (shrunk towards the segment's rate by one pseudo-account, so a category seen
    twice does not lead); the set is the prefix of that ranking with the largest Pearson
    chi-square of inside vs outside (the optimal binary split of an ordered category,
    Breiman et al. 1984, sec. 9.4). The set keeps SHAP's choice when the data cannot
    tell (fewer than ``4 * min_k`` or :data:`_MIN_SET_ROWS` accounts, or no prefix beats SHAP's set by the
    5% chi-square, Bonferroni-corrected for the prefixes compared). Only plain
    ``in`` criteria of columns with three or more categories are refit.

    Parameters
    ----------
    c : Criterion
        The ICP criterion whose category set is chosen.
    rows : pandas.DataFrame
        Coerced accounts (the refinement rows).
    is_best : numpy.ndarray of bool
        Best-cohort membership of each row.
    segment : numpy.ndarray of bool
        Rows meeting every other ICP criterion and no exclusion.
    min_k : int
        Fewest accounts a criterion may cover.
    min_per_value : int, default 3
        Fewest accounts a category needs in the segment to be ranked.

    Returns
    -------
    Criterion
        ``c`` with the chosen ``values``, or ``c`` unchanged.
    """
    if c.kind != "icp" or c.also or c.op != "in":
        return c
    seg = np.asarray(segment, dtype=bool)
    n = int(seg.sum())
    if n < max(4 * min_k, _MIN_SET_ROWS):
        return c
    cat = _as_category(rows[c.column]).to_numpy(object)[seg]
    keys = np.array([spelling_key(v) for v in cat], dtype=object)
    y = np.asarray(is_best, dtype=bool)[seg]
    uk, inv = np.unique(keys, return_inverse=True)
    if len(uk) < 3:
        return c
    cnt = np.bincount(inv, minlength=len(uk)).astype(float)
    pos = np.bincount(inv, weights=y.astype(float), minlength=len(uk))
    rate = (pos + y.mean()) / (cnt + 1)
    order = [i for i in np.argsort(-rate, kind="stable") if cnt[i] >= min_per_value]
    if not order:
        return c
    stat = _band_stat(np.cumsum(pos[order]), np.cumsum(cnt[order]), float(y.sum()), n)
    stat = np.where(np.cumsum(cnt[order]) >= min_k, stat, -np.inf)
    j = int(np.argmax(stat))
    bar = float(stats.chi2.isf(0.05 / max(len(order) - 1, 1), 1))  # the best of several prefixes
    if not np.isfinite(stat[j]) or stat[j] < _chi2_in(c, rows, is_best, seg) + bar:
        return c  # the data do not clearly prefer another set: keep the model's
    chosen = set(uk[order[:j + 1]])
    # one shown spelling per key: the most frequent one in the segment
    names = {}
    for v, k in zip(cat, keys, strict=True):
        if k in chosen:
            names.setdefault(k, {}).setdefault(v, 0)
            names[k][v] += 1
    values = tuple(sorted(max(sorted(d), key=d.get) for d in names.values()))
    return replace(c, values=values)


# ----------------------------------------------------------------------------- derive
def _odds_ratio(bad: np.ndarray, m: np.ndarray) -> float:
    """Odds ratio of ``bad`` inside vs outside ``m`` (0.5 continuity correction)."""
    a, b_ = bad[m].sum() + 0.5, (~bad[m]).sum() + 0.5
    c, d = bad[~m].sum() + 0.5, (~bad[~m]).sum() + 0.5
    return float((a / b_) / (c / d))


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


def _select_exclusions(cands: list[Criterion], sel: pd.DataFrame, cohort: pd.Series,
                       churned: pd.Series | None, cfg: CriteriaConfig) -> list[Criterion]:
    """Greedy: among exclusions significant at ``alpha``, the one with the strongest
    effect (odds ratio of worst cohort, or of churn) first; each later one must
    still hold on the accounts the earlier ones left in, so proxies of one cause
    and broad "outside the ICP" ranges drop out."""
    b = (cohort == BEST).to_numpy(bool)
    w = (cohort == WORST).to_numpy(bool)
    ch = churned.to_numpy(bool) if churned is not None else None
    masks = {c.key: c.mask(sel).to_numpy(bool) for c in cands}
    pool = []
    for c in cands:
        m = masks[c.key]
        if b.any() and m[b].mean() > cfg.max_wrongly_excluded:
            continue  # would drop too many of the best customers
        pool.append(c)
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
                scored.append((-effect, p, c.describe(), c))
        if not scored:
            break
        scored.sort(key=lambda t: t[:3])
        best = scored[0][3]
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
        self.clear = np.ones(len(expl.data), dtype=bool)
        for c in anti:
            self.clear &= ~c.mask(expl.data).to_numpy(bool)

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
                       proposer: _IcpProposer | None = None) -> list[Criterion]:
    """Greedy ICP (see the module docstring, step 2).

    Each round, every candidate is tested within the segment so far (one-sided Fisher,
    matching vs not matching, on the selection rows). Among the columns with a candidate
    significant at ``alpha``, the one the model says adds most within the segment
    (``proposer.strength``) is taken, with its most significant candidate: the selection
    rows decide *whether* and *where* to cut, the model's SHAP on many more rows decides
    *which column* when several pass (on a few dozen selection rows, p-values of a strong
    and a weak column can tie by chance).
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
            if p is not None and p < cfg.alpha and (c.column not in passing or p < passing[c.column][0]):
                passing[c.column] = (p, c)
        if not passing:
            break
        strength = proposer.strength(kept) if proposer is not None else {}
        col = min(passing, key=lambda k: (-strength.get(k, 0.0), passing[k][0], k))
        best_c = passing[col][1]
        kept.append(best_c)
        seg = seg & best_c.mask(sel)
        remaining = [c for c in remaining if not set(c.columns) & set(best_c.columns)]
    return kept


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
    anti_c = [c for c in cands if c.kind == "anti_icp"]
    icp_c = [c for c in cands if c.kind == "icp"]
    pairs = interaction_candidates(fit_expl, anti_c, kinds, allowed, cfg, source="fit_model")
    if churn_expl is not None:
        pairs += interaction_candidates(churn_expl, anti_c, kinds, allowed, cfg, source="churn_model")
    anti = _select_exclusions(anti_c + pairs, select, select_cohort, select_churn, cfg)
    not_excluded = pd.Series(True, index=select.index)
    for c in anti:
        not_excluded &= ~c.mask(select)
    icp_pairs, n_pairs = _pair_search(fit_expl, kinds, allowed, anti, select, select_cohort,
                                      refine_rows, refine_cohort, cfg)
    proposer = _IcpProposer(fit_expl, anti, kinds, allowed, cfg)
    icp = _select_inclusions(icp_c + icp_pairs, select, select_cohort == BEST, not_excluded, cfg,
                             proposer)
    # cuts are re-chosen only when they are also refined (the real run): the stability
    # resamples pass no refine rows, and their match keys ignore numeric bounds anyway
    if len(icp) > 1 and refine_rows is not None and refine_cohort is not None:
        rows, cohort = refine_rows, refine_cohort
        clear = pd.Series(True, index=rows.index)
        for c in anti:
            clear &= ~c.mask(rows)
        icp = _backfit(icp, rows, (cohort == BEST).to_numpy(bool), clear, proposer,
                       _min_count(cfg, len(rows)))
    if refine_rows is not None and refine_cohort is not None:
        anti = [refine_numeric(c, refine_rows, refine_cohort) for c in anti]
        icp = _fit_bands(icp, anti, refine_rows, refine_cohort, cfg)
    return anti, icp, len(cands) + len(pairs) + n_pairs


def _pair_search(fit_expl: GroupedShap, kinds: dict[str, str], allowed: list[str],
                 anti: list[Criterion], select: pd.DataFrame, select_cohort: pd.Series,
                 refine_rows: pd.DataFrame | None, refine_cohort: pd.Series | None,
                 cfg: CriteriaConfig) -> tuple[list[Criterion], int]:
    """:func:`icp_pair_candidates` on the refinement rows the selection does not test on
    (the model's training rows), else on the selection rows; accounts an exclusion
    removes are left out. Returns the pairs and the number of column pairs searched."""
    rows, cohort = select, select_cohort
    if refine_rows is not None and refine_cohort is not None:
        rest = ~refine_rows.index.isin(select.index)
        enough = int(rest.sum()) >= 4 * _min_count(cfg, len(refine_rows))
        rows, cohort = ((refine_rows[rest], refine_cohort[rest]) if enough
                        else (refine_rows, refine_cohort))
    clear = np.ones(len(rows), dtype=bool)
    for c in anti:
        clear &= ~c.mask(rows).to_numpy(bool)
    return icp_pair_candidates(fit_expl, kinds, allowed, rows, (cohort == BEST).to_numpy(bool),
                               clear, cfg)


def _fit_bands(icp: list[Criterion], anti: list[Criterion], rows: pd.DataFrame,
               cohort: pd.Series, cfg: CriteriaConfig, passes: int = 2) -> list[Criterion]:
    """Each ICP criterion's bounds or category set chosen given all the others.

    :func:`fit_band` for numeric criteria, :func:`fit_set` for category sets; two passes
    in order, so a criterion chosen before another one moved is chosen again.
    """
    b = (cohort == BEST).to_numpy(bool)
    clear = np.ones(len(rows), dtype=bool)
    for c in anti:
        clear &= ~c.mask(rows).to_numpy(bool)
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


@dataclass
class CriteriaSplit:
    """The accounts the criteria stage reads, and which rows play which part.

    Parameters
    ----------
    accounts : pandas.DataFrame
        Every account (coerced table), in one index.
    cohorts : pandas.Series
        Cohort (best / middle / worst) of each account, same index.
    part : pandas.Series
        ``train`` / ``selection`` / ``holdout`` per account (the pipeline's split).
    churned : pandas.Series of bool, optional
        Whether each account churned, same index.
    refit : callable, optional
        ``refit(index) -> (fit_explanation, churn_explanation or None)``: fit the models
        on the accounts of ``index`` only and explain those accounts. Needed for K-fold
        cross-fitting (small data); without it the three-way split is always used.
    n_folds : int, default 5
        Folds of the cross-fitting.
    seed : int, default 0
        Seed of the fold assignment and of the bootstraps.
    """

    accounts: pd.DataFrame
    cohorts: pd.Series
    part: pd.Series
    churned: pd.Series | None = None
    refit: Callable[[pd.Index], tuple[GroupedShap, GroupedShap | None]] | None = None
    n_folds: int = 5
    seed: int = 0

    def rows(self, *parts: str) -> tuple[pd.DataFrame, pd.Series, pd.Series | None]:
        """Accounts, cohorts and churn of the given parts.

        Parameters
        ----------
        *parts : str
            Any of ``train``, ``selection``, ``holdout``; all accounts when none given.

        Returns
        -------
        tuple
            ``(accounts, cohorts, churned)`` restricted to those rows (``churned`` is
            None without a churn column).
        """
        m = self.part.isin(parts).to_numpy(bool) if parts else np.ones(len(self.part), dtype=bool)
        ch = self.churned[m] if self.churned is not None else None
        return self.accounts[m], self.cohorts[m], ch

    def folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The cross-fitting folds, stratified by cohort (seeded).

        Returns
        -------
        list of tuple of numpy.ndarray
            ``n_folds`` pairs ``(in_fold, out_of_fold)`` of positional row indices into
            :attr:`accounts`.
        """
        from sklearn.model_selection import KFold, StratifiedKFold

        strat = self.cohorts.astype(str).to_numpy()
        counts = pd.Series(strat).value_counts()
        if len(counts) > 1 and counts.min() >= self.n_folds:
            kf = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
            return list(kf.split(np.zeros(len(strat)), strat))
        kf = KFold(n_splits=self.n_folds, shuffle=True, random_state=self.seed)
        return list(kf.split(np.zeros(len(strat))))


#: Below this many accounts, criteria are selected and confirmed by K-fold cross-fitting.
CROSSFIT_BELOW = 1500
#: ... and also when the held-out split could not confirm a segment this much better than average.
CROSSFIT_LIFT = 2.0
#: Cross-fitting needs at least this many accounts per fold (fewer: the three-way split).
_MIN_FOLD_ROWS = 10


def use_crossfit(n_accounts: int, n_holdout: int, base_rate: float) -> bool:
    """Whether the data are small enough for K-fold cross-fitting (see :func:`derive_criteria`).

    True below :data:`CROSSFIT_BELOW` accounts, or when a segment covering 25% of the
    held-out rows would need a lift of :data:`CROSSFIT_LIFT` or more to be told apart
    from chance (:func:`detectable_lift`; not estimable counts as too few).

    Parameters
    ----------
    n_accounts : int
        Accounts in the run.
    n_holdout : int
        Accounts the three-way split would hold out.
    base_rate : float
        Share (0-1) of accounts in the best cohort.

    Returns
    -------
    bool
        True to cross-fit, False for the three-way split.
    """
    need = detectable_lift(n_holdout, base_rate)
    return n_accounts < CROSSFIT_BELOW or not need < CROSSFIT_LIFT


def _side(c: Criterion) -> str:
    return "include" if c.kind == "icp" else ("churn" if c.source == "churn_model" else "exclude")


def _given_others_p(m: np.ndarray, seg: np.ndarray, b: np.ndarray) -> float:
    """One-sided Fisher p that ``m`` raises the best rate ``b`` inside ``seg`` (1.0 if no test)."""
    inside, outside = seg & m, seg & ~m
    if not inside.any() or not outside.any():
        return 1.0
    return _fisher_greater(int(b[inside].sum()), int(inside.sum()), int(b[outside].sum()),
                           int(outside.sum()))


def _confirm(chosen: list[Criterion], p: dict, n_cands: int, alpha: float,
             ok: dict | None = None) -> tuple[list[Criterion], list[Criterion]]:
    """Benjamini-Hochberg across every candidate proposed (the unselected count with p = 1)."""
    p_all = np.array([p[c.key] for c in chosen] + [1.0] * max(n_cands - len(chosen), 0))
    q = benjamini_hochberg(p_all)[:len(chosen)] if chosen else []
    confirmed, unconfirmed = [], []
    for c, qv in zip(chosen, q, strict=True):
        c.evidence["q_value"] = float(qv)
        good = qv < alpha and (ok is None or ok.get(c.key, True))
        (confirmed if good else unconfirmed).append(c)
    return confirmed, unconfirmed


def derive_criteria(fit_expl: GroupedShap, churn_expl: GroupedShap | None, kinds: dict[str, str],
                    allowed: list[str], split: CriteriaSplit, *, cfg: CriteriaConfig,
                    seed: int = 0) -> CriteriaSet:
    """Propose, select and confirm criteria (see the module docstring).

    Parameters
    ----------
    fit_expl, churn_expl : GroupedShap
        SHAP of the fit and churn models on the proposal rows (train + selection).
    kinds : dict
        Kind of each targetable column.
    allowed : list of str
        Columns criteria may name (targetable, not screened out).
    split : CriteriaSplit
        Every account with its cohort, churn and part. With the three-way split,
        selection chooses, train + selection refine numeric bounds (outcome labels),
        holdout confirms. When the data are small (:func:`use_crossfit`),
        ``split.refit`` is given and there are at least 10 accounts per fold, K-fold
        cross-fitting replaces it (see
        :func:`_derive_crossfit`).
    cfg : CriteriaConfig
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    CriteriaSet
        ``meta["evidence"]`` says how the evidence was obtained (``holdout`` or
        ``crossfit``, with the folds).

    Confirmation: an exclusion is confirmed by its held-out evidence alone; an ICP
    criterion must also improve the segment *given the others* on held-out rows (its
    one-sided Fisher test inside the accounts that meet every other ICP criterion and
    no exclusion). ``evidence["p_value"]`` is the larger of the two p-values
    (``p_alone``, ``p_given_others``), and is what Benjamini-Hochberg corrects. An ICP
    criterion that fails is dropped and the others are tested again without it (the
    weakest first), so a correlated column that only rode along with the cause drops out.
    """
    hold, hold_coh, hold_ch = split.rows("holdout")
    base = float((hold_coh == BEST).mean()) if len(hold_coh) else float("nan")
    if (split.refit is not None and len(split.accounts) >= _MIN_FOLD_ROWS * split.n_folds
            and use_crossfit(len(split.accounts), len(hold), base)):
        return _derive_crossfit(kinds, allowed, split, cfg=cfg, seed=seed)
    sel, sel_coh, sel_ch = split.rows("selection")
    ref, ref_coh, _ = split.rows("train", "selection")
    anti, icp, n_cands = select_criteria(
        fit_expl, churn_expl, kinds, allowed, sel, sel_coh, select_churn=sel_ch,
        refine_rows=ref, refine_cohort=ref_coh, cfg=cfg)
    holdout_best, holdout_worst = hold_coh == BEST, hold_coh == WORST
    b = holdout_best.to_numpy(bool)

    # step 3: confirm on held-out rows
    def ev(c: Criterion) -> dict:
        return segment_evidence(c.mask(hold), holdout_best, hold_ch, is_worst=holdout_worst,
                                n_bootstrap=cfg.n_bootstrap, seed=seed, side=_side(c))

    chosen = [replace(c, evidence=ev(c)) for c in anti + icp]
    masks = {c.key: c.mask(hold).to_numpy(bool) for c in chosen}
    clear = np.ones(len(hold), dtype=bool)
    for c in chosen:
        if c.kind == "anti_icp":
            clear &= ~masks[c.key]
    dropped: list[Criterion] = []
    while True:
        icp_now = [c for c in chosen if c.kind == "icp"]
        p = {}
        for c in chosen:
            p[c.key] = c.evidence.setdefault("p_alone", c.evidence["p_value"])
            if c.kind == "icp":
                seg = clear.copy()
                for o in icp_now:
                    if o.key != c.key:
                        seg &= masks[o.key]
                c.evidence["p_given_others"] = _given_others_p(masks[c.key], seg, b)
                p[c.key] = max(p[c.key], c.evidence["p_given_others"])
            c.evidence["p_value"] = p[c.key]
        confirmed, unconfirmed = _confirm(chosen, p, n_cands, cfg.alpha)
        failed = [c for c in unconfirmed if c.kind == "icp"]
        if not failed or len(icp_now) <= 1:
            break
        # the weakest goes; the others are tested again without it
        worst = max(failed, key=lambda c: (c.evidence["q_value"], c.describe()))
        worst.evidence["dropped"] = "did not improve the segment given the other criteria"
        dropped.append(worst)
        chosen = [c for c in chosen if c.key != worst.key]
    unconfirmed += dropped
    cs = CriteriaSet(icp=[c for c in confirmed if c.kind == "icp"],
                     anti_icp=[c for c in confirmed if c.kind == "anti_icp"],
                     unconfirmed=unconfirmed)
    cs.meta["n_candidates"] = n_cands
    cs.meta["evidence"] = {"method": "holdout", "n": len(hold),
                           "interval": "percentile bootstrap of the held-out accounts"}
    cs.icp_evidence = segment_evidence(cs.icp_mask(hold), holdout_best, hold_ch,
                                       is_worst=holdout_worst, n_bootstrap=cfg.n_bootstrap,
                                       seed=seed, side="include")
    cs.anti_evidence = segment_evidence(cs.anti_mask(hold), holdout_best, hold_ch,
                                        is_worst=holdout_worst, n_bootstrap=cfg.n_bootstrap,
                                        seed=seed, side="exclude")
    cs.verdict = _verdict(cs, len(hold))
    _withhold_unreliable(cs)
    return cs


def _twin(c: Criterion, cs: CriteriaSet) -> Criterion | None:
    """The criterion of ``cs`` on the same column(s) and side as ``c`` (None if none)."""
    return next((d for d in (cs.icp if c.kind == "icp" else cs.anti_icp) if d.columns == c.columns),
                None)


def _derive_crossfit(kinds: dict[str, str], allowed: list[str], split: CriteriaSplit, *,
                     cfg: CriteriaConfig, seed: int) -> CriteriaSet:
    """K-fold cross-fitting for small data: every account serves as held-out evidence once.

    For each of ``split.n_folds`` folds (stratified by cohort): the models are refit on
    the other folds (``split.refit``), and candidates are proposed, selected and their
    bounds fit on those folds only (steps 1-2 of the module docstring, with the other
    folds as selection and refinement rows); the resulting ICP and anti-ICP are then
    applied to the left-out fold. Pooling the left-out folds gives every account a
    membership decided by criteria chosen without it.

    * **Final criteria**: the same procedure on all accounts.
    * **Confirmation of a final criterion**: the folds' criteria on the same column(s)
      and side are its out-of-fold twins. It is confirmed when a twin was selected in a
      majority of the folds (consistency) and, on the pooled left-out rows, the twins
      raise the best rate alone (rows of folds without a twin count as not matching) and
      given the fold's other ICP criteria (ICP side), at Benjamini-Hochberg ``alpha``
      across the hypotheses tested out of fold: every (side, columns) that some fold
      selected, plus the final criteria. (Each fold chose its criteria without its
      left-out rows, so the candidates a fold rejected were never tested on them.)
    * **ICP / anti-ICP evidence and interval**: the pooled out-of-fold memberships
      against the accounts' cohorts, with a percentile bootstrap of the pooled
      out-of-fold accounts (memberships held fixed, accounts resampled). It measures the
      *procedure* that produced the final criteria on accounts it did not see, the
      cross-validated estimate of a selected model's performance (cross-fitting as in
      Chernozhukov et al. 2018, "Double/debiased machine learning", Econometrics Journal
      21(1); the bootstrap as in Efron & Tibshirani 1993, ch. 13). Because the rows of
      different folds were judged by slightly different rules, it slightly understates
      the final criteria's own lift when they are stable across folds.

    ``meta["evidence"]`` records the method, folds and each fold's criteria.
    """
    df, coh, ch = split.rows()
    n = len(df)
    oof_icp = np.zeros(n, dtype=bool)
    oof_anti = np.zeros(n, dtype=bool)
    per_fold: list[tuple[np.ndarray, CriteriaSet]] = []
    for tr, te in split.folds():
        if min((coh.iloc[tr] == BEST).sum(), (coh.iloc[tr] == WORST).sum()) < 2:
            per_fold.append((te, CriteriaSet()))  # nothing to learn from: no criteria
            continue
        fe, ce = split.refit(df.index[tr])
        a_k, i_k, _ = select_criteria(
            fe, ce, kinds, allowed, df.iloc[tr], coh.iloc[tr],
            select_churn=ch.iloc[tr] if ch is not None else None,
            refine_rows=df.iloc[tr], refine_cohort=coh.iloc[tr], cfg=cfg)
        cs_k = CriteriaSet(icp=i_k, anti_icp=a_k)
        rows = df.iloc[te]
        oof_icp[te] = cs_k.icp_mask(rows).to_numpy(bool)
        oof_anti[te] = cs_k.anti_mask(rows).to_numpy(bool)
        per_fold.append((te, cs_k))
    fe, ce = split.refit(df.index)
    anti, icp, n_cands = select_criteria(fe, ce, kinds, allowed, df, coh, select_churn=ch,
                                         refine_rows=df, refine_cohort=coh, cfg=cfg)
    best, worst = coh == BEST, coh == WORST
    b = best.to_numpy(bool)
    k_folds = len(per_fold)
    chosen, p, ok = [], {}, {}
    for c in anti + icp:
        m, seg, hits = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), 0
        for te, cs_k in per_fold:
            twin = _twin(c, cs_k)
            if twin is None:
                continue
            hits += 1
            rows = df.iloc[te]
            m[te] = twin.mask(rows).to_numpy(bool)
            if c.kind == "icp":
                s = ~cs_k.anti_mask(rows).to_numpy(bool)
                for o in cs_k.icp:
                    if o is not twin:
                        s &= o.mask(rows).to_numpy(bool)
                seg[te] = s
        evd = segment_evidence(pd.Series(m, index=df.index), best, ch, is_worst=worst,
                               n_bootstrap=cfg.n_bootstrap, seed=seed, side=_side(c))
        evd["p_alone"] = evd["p_value"]
        evd["folds_selected"] = hits
        if c.kind == "icp":
            evd["p_given_others"] = _given_others_p(m, seg, b)
            evd["p_value"] = max(evd["p_alone"], evd["p_given_others"])
        c = replace(c, evidence=evd)
        p[c.key], ok[c.key] = evd["p_value"], 2 * hits > k_folds
        chosen.append(c)
    # the hypotheses tested on out-of-fold rows: every (side, columns) some fold selected,
    # and the final criteria (the folds chose theirs without their left-out rows)
    family = {(c.kind, tuple(c.columns)) for _, cs_k in per_fold for c in cs_k.icp + cs_k.anti_icp}
    family |= {(c.kind, tuple(c.columns)) for c in chosen}
    confirmed, unconfirmed = _confirm(chosen, p, len(family), cfg.alpha, ok)
    cs = CriteriaSet(icp=[c for c in confirmed if c.kind == "icp"],
                     anti_icp=[c for c in confirmed if c.kind == "anti_icp"],
                     unconfirmed=unconfirmed)
    cs.meta["n_candidates"] = n_cands
    cs.meta["evidence"] = {
        "method": "crossfit", "n_hypotheses": len(family), "n": n, "folds": k_folds,
        "interval": "percentile bootstrap of the pooled out-of-fold accounts",
        "per_fold": [{"n_out_of_fold": len(te), "icp": [c.describe() for c in cs_k.icp],
                      "anti_icp": [c.describe() for c in cs_k.anti_icp]} for te, cs_k in per_fold],
    }
    icp_oof = oof_icp if cs.icp else np.zeros(n, dtype=bool)
    cs.icp_evidence = segment_evidence(pd.Series(icp_oof, index=df.index), best, ch,
                                       is_worst=worst, n_bootstrap=cfg.n_bootstrap, seed=seed,
                                       side="include")
    cs.anti_evidence = segment_evidence(pd.Series(oof_anti, index=df.index), best, ch,
                                        is_worst=worst, n_bootstrap=cfg.n_bootstrap, seed=seed,
                                        side="exclude")
    cs.verdict = _verdict(cs, n, rows=f"accounts, each judged by criteria chosen without it "
                                      f"({k_folds}-fold cross-fitting)")
    _withhold_unreliable(cs)
    return cs


def detectable_lift(n: int, base_rate: float, coverage: float = 0.25) -> float:
    """The smallest lift a segment covering ``coverage`` of ``n`` accounts needs to be confirmed.

    The lift at which the lower end of a 95% (normal) interval of the segment's best
    rate just clears the base rate: what the data *can* tell apart from chance. On
    90 held-out accounts with a 25% best cohort that is about 1.8x; on 900, about 1.2x.

    Parameters
    ----------
    n : int
        Accounts the evidence is measured on.
    base_rate : float
        Share (0-1) of accounts in the best cohort.
    coverage : float, default 0.25
        Share (0-1) of the accounts inside the segment.

    Returns
    -------
    float
        The lift (ratio); NaN when not estimable (e.g. no accounts).

    Examples
    --------
    >>> from icpml.criteria import detectable_lift
    >>> round(detectable_lift(900, 0.25), 1)
    1.2
    """
    k = coverage * n
    if k < 1 or not 0 < base_rate < 1:
        return float("nan")
    for lift in np.arange(1.01, 1 / base_rate + 1e-9, 0.01):
        r = min(lift * base_rate, 1.0)
        if r - 1.96 * math.sqrt(r * (1 - r) / k) > base_rate:
            return float(round(lift, 2))
    return float("nan")


def _withhold_unreliable(cs: CriteriaSet) -> None:
    """No reliable ICP: suggest nothing. When the ICP's lift interval includes 1, its criteria
    move to ``unconfirmed`` (kept with their evidence for the report), so no account is
    tiered, matched or exported by an ICP the evidence does not support."""
    if cs.icp and not cs.verdict.get("icp_found", False):
        for c in cs.icp:
            c.evidence["dropped"] = "the ICP as a whole may be no better than chance"
        cs.unconfirmed = [*cs.unconfirmed, *cs.icp]
        cs.icp = []


def _verdict(cs: CriteriaSet, n_holdout: int, rows: str = "held-out accounts") -> dict:
    ev = cs.icp_evidence
    lo, hi = (ev.get("lift_ci") or [float("nan")] * 2)
    need = detectable_lift(n_holdout, ev.get("base_rate", float("nan")))
    limits = (f" With {n_holdout} {rows}, only a segment about {need:.1f}x as good as "
              "average (at 25% coverage) could be told apart from chance; weaker criteria cannot be "
              "concluded either way." if np.isfinite(need) else "")
    if not cs.icp:
        why = ("no inclusion criterion both improved the best-cohort rate on the selection split "
               "and held up on held-out accounts")
        if cs.unconfirmed:
            why += f" ({len(cs.unconfirmed)} candidate(s) did not hold up on held-out data)"
        return {"icp_found": False, "detectable_lift": need, "message": f"No reliable ICP found: {why}. "
                f"Evidence from {n_holdout} {rows} cannot support an ICP; "
                f"collect more customers or test a hypothesis ICP.{limits}"}
    if not np.isfinite(lo) or lo <= 1.0:
        return {"icp_found": False, "detectable_lift": need, "message": (
            f"No reliable ICP found: the ICP's lift interval ({_fmtci(lo, hi)}) includes 1 on "
            f"{n_holdout} {rows}, so it may be no better than chance.{limits}")}
    wide = hi / lo > 1.8 if np.isfinite(hi) and lo > 0 else False
    return {"icp_found": True, "detectable_lift": need, "message": (
        f"ICP found: matching accounts reach the best cohort {ev['lift']:.1f}x as often as "
        f"average (95% CI {_fmtci(lo, hi)}) on {n_holdout} {rows}."
        + (f" The interval is wide: the true lift may be as low as {lo:.2f}, and criteria with "
           f"smaller effects than these cannot be concluded.{limits}" if wide else ""))}


def apply_stability(cs: CriteriaSet, stability: dict) -> None:
    """Make the verdict say the ICP is tentative when every ICP criterion is unstable.

    When an ICP was found but none of its criteria reappeared in at least
    ``criteria.min_stability`` of the resamples, ``cs.verdict`` gets ``tentative:
    True`` and a message that starts "Tentative ICP" instead of "ICP found"
    (``icp_found`` stays as the held-out evidence decided: the lift is real on
    these accounts, the choice of rules is not settled). Without resamples, or with
    at least one stable ICP criterion, the verdict gets ``tentative: False``.

    Parameters
    ----------
    cs : CriteriaSet
        The criteria; its ``verdict`` is modified in place.
    stability : dict
        :func:`icpml.stability.criteria_stability`'s result (``per_criterion``,
        ``unstable``, ``n_resamples``).
    """
    per = stability.get("per_criterion") or {}
    unstable = set(stability.get("unstable") or ())
    names = [c.describe() for c in cs.icp]
    tentative = bool(cs.verdict.get("icp_found") and names and per
                     and all(n in unstable for n in names))
    cs.verdict["tentative"] = tentative
    if tentative:
        shares = ", ".join(f"'{n}' {per.get(n, 0):.0%}" for n in names)
        msg = cs.verdict.get("message", "")
        if msg.startswith("ICP found: "):
            msg = msg[len("ICP found: "):]
        cs.verdict["message"] = (
            f"Tentative ICP: {msg[:1].lower() + msg[1:]} But no ICP criterion reappeared in "
            f"most of the {stability.get('n_resamples', 0)} bootstrap refits ({shares}): other "
            "rules would describe this segment about as well, so treat these criteria as a "
            "hypothesis to test, not a settled ICP.")


def _fmtci(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not estimable"
    return f"{lo:.2f}-{hi:.2f}"
