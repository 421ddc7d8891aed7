"""Score and tier accounts: fit score, churn risk, tier and reasons in words.

:class:`Scorer` bundles what scoring needs (the fitted fit and churn models, the
criteria and the column roles). It is what the registered MLflow model wraps, so
``icpml score``, a notebook and ``mlflow models serve`` give the same output:

=================  ===========================================================
column             meaning
=================  ===========================================================
<id column>        the account id
fit_score          fit model probability of the best cohort (trained on best
                   vs worst, so it ranks; see the report for its calibration)
churn_risk         churn model probability (blank without a churn model)
tier               ``Tier 1`` meets every ICP criterion; ``Tier 2`` misses one of two
                   or more; ``Tier 3`` the rest; ``Excluded`` any anti-ICP criterion fires
icp_match          meets every inclusion criterion and no exclusion
anti_icp_match     any exclusion fires
exclusion_reasons  the exclusions that fired, in words
top_reasons        the ICP criteria the account meets or misses; with ``explain``, the
                   three columns that moved the fit score most (exact SHAP)
data_issues        this row's missing columns, unreadable or unseen
                   values (scored as unknown or a rare category)
=================  ===========================================================

Every cell is read as discovery read it: the scorer carries the schema learned from the
discovery data (:mod:`icpml.schema`), so "1,234", "$21.72" or "1.234,5" mean what they meant
in training, and a cell that cannot be read (a yes/no column's "unknown") is that cell's
issue alone, never its column's or its chunk's.
Columns absent from a prospect list are scored as missing (the models route
missing values) and named in ``data_issues``; unseen categories fall in the
encoder's "infrequent" bucket and infinite numbers are scored as missing, both
also named in ``data_issues``. Large tables are scored in chunks
(:meth:`Scorer.score_batches` streams them), each row on its own.

State is declared: the :class:`Scorer` is an immutable, picklable model (frozen dataclass:
its models, criteria and schema; no pools, caches or memos). Everything a scoring job
creates - the prediction thread, the SHAP worker processes, the compiled kernels of models
not compiled at registration, the caches of read values and reason words - belongs to a
:class:`ScoringSession` (a context manager; :meth:`Scorer.session`) and ends with it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icpml._vocab import EXCLUDED, TIER_1, TIER_2, TIER_3, TIERS
from icpml.criteria import CriteriaSet
from icpml.explain import explain as shap_explain
from icpml.fastpredict import scoring_threads
from icpml.models import TrainedModel, openmp_threads
from icpml.schema import FALSE_SPELLINGS, TRUE_SPELLINGS, ColumnSchema, Schema, coerce

__all__ = ["Scorer", "ScoringSession", "DataIssue", "assign_tiers", "tier_summary", "round_scores", "TIERS",
           "TIER_DEFINITIONS",            "SCORED_COLUMNS", "SCORE_DECIMALS"]

log = logging.getLogger(__name__)

#: what each tier means (the one definition; criteria.json and the report quote it)
TIER_DEFINITIONS = {
    TIER_1: "meets every ICP criterion and no exclusion",
    TIER_2: "misses exactly one of two or more ICP criteria, no exclusion",
    TIER_3: "misses two or more ICP criteria (or the only one), no exclusion",
    EXCLUDED: "at least one anti-ICP exclusion fires",
}
SCORED_COLUMNS = ["fit_score", "churn_risk", "tier", "icp_match", "anti_icp_match",
                  "exclusion_reasons", "top_reasons", "data_issues"]
#: decimals of ``fit_score`` and ``churn_risk`` in written score files (see :func:`round_scores`)
SCORE_DECIMALS = 4
#: a column of this name is passed through to the scored output when present (an account label)
NAME_COLUMN = "name"


def round_scores(scored: pd.DataFrame, decimals: int = SCORE_DECIMALS) -> pd.DataFrame:
    """Round ``fit_score`` and ``churn_risk`` of a scored table for output files.

    Four decimals separate accounts far more finely than the models can (their held-out
    intervals are a few hundredths wide); seventeen digits only make a CSV hard to read.

    Parameters
    ----------
    scored : pandas.DataFrame
        A table from :meth:`Scorer.score`. Not modified.
    decimals : int, default :data:`SCORE_DECIMALS`
        Decimals kept.

    Returns
    -------
    pandas.DataFrame
        A copy with the two score columns rounded (when present); other columns
        unchanged.
    """
    cols = {c: decimals for c in ("fit_score", "churn_risk") if c in scored.columns}
    return scored.round(cols) if cols else scored


def assign_tiers(criteria: CriteriaSet, df: pd.DataFrame) -> pd.Series:
    """Tier of each account (see the module docstring).

    ``Tier 1`` meets every ICP criterion, ``Tier 2`` misses one of two or more (a near
    miss: it meets the others), ``Tier 3`` the rest, and ``Excluded`` any anti-ICP
    criterion fires (which wins). An ICP of one criterion has no Tier 2: an account
    missing it meets nothing of the ICP, so it is Tier 3. With no confirmed ICP
    criteria there is no Tier 1 or 2: every account that no exclusion removes is Tier 3.

    Parameters
    ----------
    criteria : CriteriaSet
        The ICP and anti-ICP criteria.
    df : pandas.DataFrame
        Coerced accounts, one per row. Not modified.

    Returns
    -------
    pandas.Series
        Categorical with the categories :data:`TIERS` in order, named ``tier``,
        same index as ``df``.
    """
    tier, _, _ = _tiers_from_hits([c.mask(df).to_numpy(bool) for c in criteria.icp],
                                  [c.mask(df).to_numpy(bool) for c in criteria.anti_icp], len(df))
    return pd.Series(pd.Categorical(tier, categories=TIERS), index=df.index, name="tier")


def _tiers_from_hits(icp_hits: list[np.ndarray], anti_hits: list[np.ndarray],
                     n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tier, ICP match and anti-ICP match from each criterion's row mask (evaluated once)."""
    anti = np.any(anti_hits, axis=0) if anti_hits else np.zeros(n, dtype=bool)
    if icp_hits:
        missed = len(icp_hits) - np.sum(icp_hits, axis=0)
    else:
        missed = np.full(n, 99)
    # Tier 2 is a near miss: one criterion missed while at least one other is met (with a
    # one-criterion ICP, missing it is missing everything: Tier 3, not a second priority)
    near = (missed == 1) & (len(icp_hits) >= 2)
    tier = np.where(missed == 0, TIER_1, np.where(near, TIER_2, TIER_3))
    tier = np.where(anti, EXCLUDED, tier)
    return tier, (missed == 0) & ~anti, anti


def tier_summary(tiers: pd.Series, is_best: pd.Series | None = None,
                 churned: pd.Series | None = None) -> pd.DataFrame:
    """Accounts per tier and, where outcomes are known, best-cohort and churn rates.

    Parameters
    ----------
    tiers : pandas.Series
        Tier of each account (:func:`assign_tiers`).
    is_best : pandas.Series of bool, optional
        Best-cohort membership of the same accounts.
    churned : pandas.Series of bool, optional
        Churn of the same accounts.

    Returns
    -------
    pandas.DataFrame
        One row per tier in :data:`TIERS` order (empty tiers included), columns
        ``tier``, ``accounts`` (count), ``share`` of all accounts, and with the
        outcomes ``best_rate`` / ``churn_rate`` (shares 0-1; NaN for an empty tier).
    """
    out = pd.DataFrame({"accounts": tiers.value_counts().reindex(TIERS, fill_value=0)})
    out["share"] = out["accounts"] / max(len(tiers), 1)
    if is_best is not None:
        out["best_rate"] = is_best.astype(float).groupby(tiers, observed=False).mean().reindex(TIERS)
    if churned is not None:
        out["churn_rate"] = churned.astype(float).groupby(tiers, observed=False).mean().reindex(TIERS)
    out.index.name = "tier"
    return out.reset_index()


def _contribution_words(col: str, value, shap_value: float) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        shown = "unknown"
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        shown = str(int(value))
    elif isinstance(value, (float, np.floating)):
        v = float(value)
        shown = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"  # 2,060 rather than 2.06e+03
    else:
        shown = str(value) if len(str(value)) <= 60 else str(value)[:60] + "..."
    verb = "raises" if shap_value > 0 else "lowers"
    return f"{col} {shown} {verb} fit"


def _words(c, X: pd.DataFrame, hit: np.ndarray, memo: dict) -> pa.Array:
    """Why each row meets or misses criterion ``c``; a conjunction joins its parts with "and"."""
    if not c.also:
        return _criterion_words(c, X[c.column], hit, memo)
    parts = [_criterion_words(part, X[part.column], part.mask(X).to_numpy(bool), memo)
             for part in c.parts]
    return pc.binary_join_element_wise(*parts, " and ")


#: Reasons remembered per criterion (values repeat across chunks); forgotten past this many.
_MEMO_SIZE = 200_000


def _criterion_words(c, values: pd.Series, hit: np.ndarray, memo: dict) -> pa.Array:
    """``c.reason`` for every row: worded once per distinct (value, hit), then gathered."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    key = (codes.astype(np.int64) + 1) * 2 + hit  # 0/1: missing value
    rows, keys = pd.factorize(key)
    known = memo.setdefault(c, {})  # by the condition itself (a conjunction's parts are new objects)
    if len(known) > _MEMO_SIZE:
        known.clear()
    words = []
    for k in keys.tolist():
        value = uniques[k // 2 - 1] if k >= 2 else None
        ref = (value, k & 1)
        if ref not in known:
            known[ref] = c.reason(value, hit=bool(k & 1))
        words.append(known[ref])
    return pa.array(words, type=pa.string()).take(pa.array(rows))


def _join_words(parts: list[pa.Array], n: int) -> pa.Array:
    """Join each row's words from ``parts`` with "; ", skipping nulls ("" when none).

    (pyarrow 25's ``null_handling="skip"`` drops rows that are null in every part, so the
    nulls are skipped here: a pair joins where both are present, else the one present.)
    """
    joined = pa.nulls(n, type=pa.string())
    for words in parts:
        joined = pc.coalesce(pc.binary_join_element_wise(joined, words, "; "), joined, words)
    return pc.fill_null(joined, "")


def _only(words: pa.Array, rows: np.ndarray) -> pa.Array:
    """``words`` on ``rows``, null elsewhere."""
    return pc.if_else(pa.array(rows), words, pa.scalar(None, pa.string()))


def _text(words: pa.Array) -> pd.Series:
    """An Arrow string array as a pandas ``str`` column, without a copy."""
    try:
        dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas 3's default ``str``
    except TypeError:  # pandas < 2.3
        dtype = pd.StringDtype("pyarrow")
    return pd.Series(pd.array(words, dtype=dtype))


def _shown(value) -> str:
    text = str(value)
    return repr(text if len(text) <= 30 else text[:30] + "...")


@dataclass
class DataIssue:
    """One problem the scorer had to work around in one column.

    Parameters
    ----------
    column : str
        The column concerned.
    kind : str
        A key of ``_ISSUE_WORDS``: ``missing column`` and ``missing id`` concern every
        row; ``blank id`` and ``duplicate id`` the id column's rows; ``not yes/no``,
        ``not a number``, ``infinite``, ``ambiguous number`` and ``unseen`` single cells
        (:class:`icpml.schema.CellIssues`).
    rows : numpy.ndarray of bool, optional
        The rows affected (``None``: every row).
    values : pandas.Series, optional
        The raw values of those rows, for the words and the examples.
    """

    column: str
    kind: str
    rows: np.ndarray | None = None
    values: pd.Series | None = None

    def words(self, value=None) -> str:
        """The issue in words for one row.

        Parameters
        ----------
        value : Any, optional
            That row's raw value (for the cell-level kinds).

        Returns
        -------
        str
            E.g. ``employees 'many' is not a number: scored as unknown``.
        """
        return _ISSUE_WORDS[self.kind][0].format(c=self.column, v=_shown(value))


# per issue kind: the words for one row ({c} column, {v} the row's value) and for a whole
# table ({n} rows, {eg} a few example values)
_ISSUE_WORDS = {
    "missing column": ("column '{c}' missing: scored as unknown",
                       "column '{c}' missing: scored as unknown"),
    "missing id": ("id column '{c}' missing: rows numbered instead",
                   "id column '{c}' missing: rows numbered instead (0 = the first of the {n} "
                   "rows, in input order); add the id column to join the scores back"),
    "blank id": ("{c} is blank", "column '{c}': {n} blank id(s)"),
    "duplicate id": ("{c} {v} repeats an earlier row's",
                     "column '{c}': {n} row(s) repeat an earlier row's id{eg}; each row is "
                     "scored on its own, so a join on '{c}' will duplicate them"),
    "not yes/no": ("{c} {v} is not yes/no: scored as unknown",
                   "column '{c}': {n} value(s) not yes/no scored as unknown{eg}"),
    "not a number": ("{c} {v} is not a number: scored as unknown",
                     "column '{c}': {n} non-numeric value(s) scored as unknown{eg}"),
    "infinite": ("{c} is infinite: scored as unknown",
                 "column '{c}': {n} infinite value(s) scored as unknown"),
    "ambiguous number": ("{c} {v} read with '.' as the decimal point "
                         "(whole numbers at discovery: a thousands dot?)",
                         "column '{c}': {n} value(s){eg} read with '.' as the decimal point, "
                         "though discovery saw only whole numbers; if '.' groups thousands "
                         "in this file, write them without it (1234), as the discovery data does"),
    "unseen": ("{c} {v} never seen in the discovery data: scored as a rare category",
               "column '{c}': {n} value(s) never seen in the discovery data{eg}; "
               "scored as a rare category"),
}


class _IssueTally:
    """Data issues summed over every chunk of a table, for one warning at the end."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.examples: dict[tuple[str, str], list[str]] = {}

    def add(self, issues: list[DataIssue], n_rows: int) -> None:
        for issue in issues:
            key = (issue.column, issue.kind)
            n = n_rows if issue.rows is None else int(issue.rows.sum())
            self.counts[key] = self.counts.get(key, 0) + n
            eg = self.examples.setdefault(key, [])
            if issue.values is not None and len(eg) < 3:
                for v in pd.unique(issue.values.astype(str).to_numpy()):
                    if len(eg) >= 3:
                        break
                    if _shown(v) not in eg:
                        eg.append(_shown(v))

    def message(self) -> str:
        parts = []
        for (c, kind), n in self.counts.items():
            eg = self.examples.get((c, kind))
            parts.append(_ISSUE_WORDS[kind][1].format(
                c=c, n=n, eg=f" (e.g. {', '.join(eg)})" if eg else ""))
        return "; ".join(parts)


@dataclass(frozen=True)
class Scorer:
    """Everything needed to score raw account tables: an immutable, picklable model.

    It holds no pools, caches or compiled state of its own: :meth:`session` opens a
    :class:`ScoringSession` that owns them for one job (:meth:`score` and
    :meth:`score_batches` open and close one themselves).

    What the registered MLflow model wraps: ``icpml score``, a notebook and
    ``mlflow models serve`` all call :meth:`score`.

    Parameters
    ----------
    fit_model : TrainedModel
        The fit model (best vs worst cohort).
    churn_model : TrainedModel or None
        The churn model, if the config names a churn column.
    criteria : CriteriaSet
        The ICP and anti-ICP; they decide tiers and reasons.
    id_column : str
        The account id column, copied to the output first.
    chunk_size : int, default 50000
        Rows scored at a time (bounds memory on large tables).
    categories : dict, optional
        Categorical column -> the values in the discovery data; other values
        are named in ``data_issues``.
    name_column : str, optional
        The account label column (``columns.name``), copied to the output next to the
        id when the scored table has it; a column called ``name`` is copied too.
    schema : Schema, optional
        How discovery read each column (:func:`icpml.schema.learn_schema`); scoring reads
        every cell the same way (:func:`icpml.schema.coerce`). A scorer pickled before
        schemas existed has none and reads by its models' column kinds.

    See Also
    --------
    icpml.pipeline.discover : Builds the scorer (``Discovery.scorer``).
    icpml.tracking.load_scorer : Loads a registered one.
    """

    fit_model: TrainedModel
    churn_model: TrainedModel | None
    criteria: CriteriaSet
    id_column: str
    chunk_size: int = 50_000
    categories: dict[str, list[str]] | None = None
    name_column: str | None = None
    schema: Schema | None = None

    @property
    def label_columns(self) -> list[str]:
        """Columns copied as they are from the input to the output, after the id (names).

        Returns
        -------
        list of str
            ``name_column`` and ``name``, without repeats or the id.
        """
        cols = [c for c in (self.name_column, NAME_COLUMN) if c and c != self.id_column]
        return list(dict.fromkeys(cols))

    @property
    def input_columns(self) -> list[str]:
        """The feature columns the models read.

        Returns
        -------
        list of str
            The fit model's columns, then the churn model's others.
        """
        cols = list(self.fit_model.columns)
        if self.churn_model is not None:
            cols += [c for c in self.churn_model.columns if c not in cols]
        return cols

    @property
    def text_columns(self) -> list[str]:
        """Columns a CSV reader should hand over as text.

        Returns
        -------
        list of str
            The id, the label columns and the input columns the schema reads from
            text (see :meth:`icpml.schema.Schema.text_columns`).
        """
        return [self.id_column, *self.label_columns,
                *(c for c in self._schema().text_columns() if c in self.input_columns)]

    def _schema(self) -> Schema:
        """The scorer's schema; for an old scorer, one built from its models' column kinds."""
        if self.schema is not None:
            return self.schema
        kinds = {**(self.churn_model.kinds if self.churn_model else {}), **self.fit_model.kinds}
        cats = self.categories or {}
        return Schema({
            c: ColumnSchema("numeric") if k == "numeric"
            else ColumnSchema("boolean", true=TRUE_SPELLINGS, false=FALSE_SPELLINGS) if k == "boolean"
            else ColumnSchema("categorical", categories=tuple(cats.get(c, ())))
            for c, k in kinds.items()})

    def prepare(self, df: pd.DataFrame, codes: dict | None = None, *,
                known: dict | None = None) -> tuple[pd.DataFrame, list[DataIssue]]:
        """Align a raw table to the training columns and types; never mutates ``df``.

        Every cell is read by :func:`icpml.schema.coerce` with the discovery schema, as
        discovery read it: an unreadable cell is scored as unknown and named, its column
        kept; an absent column is all missing.

        Parameters
        ----------
        df : pandas.DataFrame
            Raw accounts (n rows). Not modified.
        codes : dict, optional
            If given, receives each categorical column's ``pd.factorize`` (computed here
            anyway), for the models to reuse (see
            :meth:`~icpml.fastpredict.FastPredictor.inputs`); filled in place.
        known : dict, optional
            A cache of values already read, kept by a :class:`ScoringSession` across
            chunks (``None``: a fresh one); filled in place.

        Returns
        -------
        tuple of (pandas.DataFrame, list of DataIssue)
            ``(X, issues)``: ``X`` holds :attr:`input_columns` coerced to their discovery
            types (numbers float64, yes/no nullable boolean, categories string), same
            index as ``df``; ``issues`` are the missing columns and unreadable cells,
            in :attr:`input_columns` order.
        """
        columns = self.input_columns
        X, cells = coerce(df, self._schema(), columns=columns, codes=codes,
                          _cache={} if known is None else known)
        issues = [DataIssue(c, "missing column") for c in columns if c not in df.columns]
        issues += [DataIssue(i.column, i.kind, i.rows, i.values) for i in cells]
        order = {c: k for k, c in enumerate(columns)}
        issues.sort(key=lambda i: order.get(i.column, len(order)))
        return X, issues

    def __setstate__(self, state: dict) -> None:
        """Unpickle; caches and pools pickled by older versions are dropped, and their
        ``fit`` / ``churn`` fields are read as ``fit_model`` / ``churn_model``."""
        for old, new in (("fit", "fit_model"), ("churn", "churn_model")):
            if old in state:
                state.setdefault(new, state.pop(old))
        for stale in ("_known", "_fallback_schema", "_shap_pool", "_memo", "_predict_pool"):
            state.pop(stale, None)
        for f in ("chunk_size", "categories", "name_column", "schema"):
            state.setdefault(f, self.__dataclass_fields__[f].default)
        self.__dict__.update(state)

    def session(self) -> ScoringSession:
        """A new scoring job on this scorer (use it as a context manager).

        Returns
        -------
        ScoringSession
            An open session owning its own caches and pools; close it (or leave its
            ``with`` block) to stop its worker thread and processes.
        """
        return ScoringSession(self)

    def score(self, df: pd.DataFrame, *, explain: bool = False) -> pd.DataFrame:
        """Score a raw account table (customers or prospects).

        Parameters
        ----------
        df : pandas.DataFrame
            Raw accounts; needs the id column, and ideally every feature column
            (absent columns are scored as missing and named in ``data_issues``).
            Not modified.
        explain : bool, default False
            ``top_reasons`` from per-account exact SHAP values (TreeSHAP, Lundberg
            et al. 2020: the three columns that moved the fit score most) instead of
            the default, the ICP criteria the account meets or misses. SHAP costs far
            more than scoring itself.

        Returns
        -------
        pandas.DataFrame
            One row per input row, in order, default index: the id column, the
            :attr:`label_columns` the input has (account names), and
            :data:`SCORED_COLUMNS` (``fit_score`` and ``churn_risk`` are model
            probabilities in 0-1, ``churn_risk`` NaN without a churn model). Each row
            is scored on its own: the output does not depend on how the table is
            chunked.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from icpml.config import ModelsConfig
        >>> from icpml.criteria import CriteriaSet, Criterion
        >>> from icpml.models import train_model
        >>> from icpml.scoring import Scorer
        >>> X = pd.DataFrame({"employees": np.arange(10.0, 1010.0, 5.0)})
        >>> y = X["employees"].between(150, 600).to_numpy(int)
        >>> fit = train_model("fit", X, y, X, y, {"employees": "numeric"}, ModelsConfig(max_iter=20))
        >>> cs = CriteriaSet(icp=[Criterion("icp", "employees", "between", low=150, high=600)])
        >>> scorer = Scorer(fit_model=fit, churn_model=None, criteria=cs, id_column="account_id")
        >>> prospects = pd.DataFrame({"account_id": ["p1", "p2", "p3"],
        ...                           "employees": ["320", "2,000", "many"]})
        >>> out = scorer.score(prospects)
        >>> out[["account_id", "tier", "icp_match"]]
          account_id    tier  icp_match
        0         p1  Tier 1       True
        1         p2  Tier 3      False
        2         p3  Tier 3      False
        >>> out["top_reasons"].tolist()[:2]
        ['employees 320 is inside the 150-600 band', 'employees 2000 is outside the 150-600 band']
        >>> out.loc[2, "data_issues"]
        "employees 'many' is not a number: scored as unknown"
        >>> bool(out.loc[0, "fit_score"] > out.loc[1, "fit_score"])
        True
        """
        with self.session() as session:
            return session.score(df, explain=explain)

    def score_batches(self, batches: Iterable[pd.DataFrame], *,
                      explain: bool = False) -> Iterator[pd.DataFrame]:
        """Score a stream of account tables (e.g. a file read in chunks), one output per input.

        Memory stays that of one chunk whatever the stream's length. The data issues of
        the whole stream are logged once, as one warning, when the stream ends. The
        stream's :class:`ScoringSession` is closed when it ends or is closed.

        Parameters
        ----------
        batches : iterable of pandas.DataFrame
            Raw account tables, as for :meth:`score`, read lazily. Not modified.
        explain : bool, default False
            SHAP ``top_reasons`` instead of the criteria met or missed (see :meth:`score`).

        Yields
        ------
        pandas.DataFrame
            The scores of each batch (a batch longer than :attr:`chunk_size` yields one
            frame per chunk), with the columns of :meth:`score`, in input order; an empty
            batch yields an empty frame.
        """
        with self.session() as session:
            yield from session.score_batches(batches, explain=explain)


class ScoringSession:
    """One scoring job: owns the pools and caches that scoring a stream creates.

    Use as a context manager (``with scorer.session() as s: s.score(df)``); :meth:`close`
    (called on exit) stops the prediction thread and the SHAP worker processes. Nothing
    it holds is pickled with the :class:`Scorer`.

    Parameters
    ----------
    scorer : Scorer
        The immutable model scored with (not modified).

    Attributes
    ----------
    scorer : Scorer
        The immutable model scored with.
    kernels : dict
        Model name -> the compiled predictor used in this session (the model's own
        :attr:`~icpml.models.TrainedModel.kernel`, or one compiled here for a model not
        compiled at registration, once a chunk of at least :data:`_COMPILE_MIN_ROWS` rows
        comes; ``None``: that model scores with its pipeline).
    known : dict
        Values already read per column (:func:`icpml.schema.coerce`'s cache).
    memo : dict
        Reasons already worded per criterion.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.kernels: dict[str, object | None] = {}
        self.known: dict = {}
        self.memo: dict = {}
        self._predict_pool = None
        self._shap_pool = None
        self.closed = False

    def __enter__(self) -> ScoringSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def score(self, df: pd.DataFrame, *, explain: bool = False) -> pd.DataFrame:
        """:meth:`Scorer.score` within this session, reusing its caches and pools.

        Parameters
        ----------
        df : pandas.DataFrame
            Raw accounts, as for :meth:`Scorer.score`. Not modified.
        explain : bool, default False
            SHAP ``top_reasons`` instead of the criteria met or missed.

        Returns
        -------
        pandas.DataFrame
            One row per input row, in order, default index, with the columns of
            :meth:`Scorer.score`; the same values whatever :attr:`Scorer.chunk_size` is.

        Raises
        ------
        RuntimeError
            The session is closed (and ``df`` has rows).
        """
        size = self.scorer.chunk_size
        parts = list(self.score_batches(
            (df.iloc[i:i + size] for i in range(0, max(len(df), 1), size)), explain=explain))
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)

    def score_batches(self, batches: Iterable[pd.DataFrame], *,
                      explain: bool = False) -> Iterator[pd.DataFrame]:
        """:meth:`Scorer.score_batches` within this session (which stays open afterwards).

        Data issues of the whole stream are logged once, as one warning, after the last batch.

        Parameters
        ----------
        batches : iterable of pandas.DataFrame
            Raw account tables, read lazily. Not modified.
        explain : bool, default False
            SHAP ``top_reasons`` instead of the criteria met or missed; from the second
            chunk on, large chunks are explained in worker processes.

        Yields
        ------
        pandas.DataFrame
            The scores of each chunk of at most :attr:`Scorer.chunk_size` rows, with the
            columns of :meth:`Scorer.score`, in input order.

        Raises
        ------
        RuntimeError
            The session is closed (and a batch has rows).
        """
        stream = ScoreStream(self, explain=explain)
        size = self.scorer.chunk_size
        for batch in batches:
            for i in range(0, max(len(batch), 1), size):
                yield stream.score(batch.iloc[i:i + size])
        stream.finish()

    def _score_chunk(self, df: pd.DataFrame, explain: bool, parallel: bool = False,
                     seen_ids: SeenIds | None = None,
                     first_row: int = 0) -> tuple[pd.DataFrame, list[DataIssue]]:
        sc = self.scorer
        codes: dict = {}  # each categorical column hashed once, for the checks and both models
        X, issues = sc.prepare(df, codes, known=self.known)
        n = len(X)
        # the models score in a background thread (their trees release the GIL) while this
        # one evaluates the criteria and words the reasons
        scores = self._background().submit(self._predict, X, codes) if n else None
        if sc.id_column in df.columns:
            ids = df[sc.id_column].astype("string")
            issues += (seen_ids or SeenIds()).issues(sc.id_column, ids)
            ids = ids.to_numpy()
        else:
            # the row's place in the whole stream (0 = the first data row), never restarting
            # per chunk: two rows of one output never share a number
            ids = pd.array(range(first_row, first_row + n), dtype="Int64").astype("string")
            issues.append(DataIssue(sc.id_column, "missing id"))
        # every criterion is evaluated once; tiers, matches and reasons all read these masks
        icp_hits = [c.mask(X).to_numpy(bool) for c in sc.criteria.icp]
        anti_hits = [c.mask(X).to_numpy(bool) for c in sc.criteria.anti_icp]
        tier, icp_match, anti_match = _tiers_from_hits(icp_hits, anti_hits, n)
        memo = self.memo
        exclusions = _text(_join_words(
            [_only(_words(c, X, hit, memo), hit)
             for c, hit in zip(sc.criteria.anti_icp, anti_hits, strict=True)], n))
        if explain and n:
            top = self._shap_reasons(X, parallel)
        else:  # the ICP criteria each account meets or misses, in words (cheap)
            top = _text(_join_words(
                [_words(c, X, hit, memo) for c, hit in zip(sc.criteria.icp, icp_hits, strict=True)], n))
        fit, churn = scores.result() if scores is not None else (np.array([], dtype=float),) * 2
        labels = {c: df[c].astype("string").to_numpy() for c in sc.label_columns
                  if c in df.columns}
        out = pd.DataFrame({sc.id_column: ids, **labels, "fit_score": fit, "churn_risk": churn,
                            "tier": tier, "icp_match": icp_match, "anti_icp_match": anti_match,
                            "exclusion_reasons": exclusions, "top_reasons": top,
                            "data_issues": _text(_issue_words(issues, n))})
        return out, issues

    def kernel(self, model: TrainedModel, n_rows: int):
        """The compiled predictor this session uses for ``model`` on a chunk of ``n_rows``.

        The model's own kernel when it has a current one; otherwise one compiled here (once
        per session) when a chunk of at least :data:`_COMPILE_MIN_ROWS` rows comes - below
        that, compiling (~0.1 s) costs more than it saves. The choice is remembered per
        model name for the session (``None`` from a failed compile included).

        Parameters
        ----------
        model : TrainedModel
            The fit or churn model about to score.
        n_rows : int
            Rows in the chunk about to be scored.

        Returns
        -------
        FastPredictor or None
            The predictor to use; ``None``: score with the model's pipeline.
        """
        from icpml.fastpredict import FastPredictor

        if model.name in self.kernels:
            return self.kernels[model.name]
        if FastPredictor.current(model.kernel):
            self.kernels[model.name] = model.kernel
        elif n_rows >= _COMPILE_MIN_ROWS:
            with openmp_threads():
                self.kernels[model.name] = FastPredictor.build(model.pipeline, model.columns, model.name)
        else:
            return None
        return self.kernels[model.name]

    def _positive(self, model: TrainedModel, X: pd.DataFrame, codes: dict) -> np.ndarray:
        kernel = self.kernel(model, len(X))
        if kernel is None:
            return model.predict_positive(X, codes, kernel=False)
        try:
            return kernel.predict_positive(X, codes=codes)
        except Exception as err:  # e.g. numba cannot compile or cache here: slow, not wrong
            from icpml.fastpredict import warn_fallback

            warn_fallback(model.name, f"{type(err).__name__}: {err}")
            self.kernels[model.name] = None
            return model.predict_positive(X, codes, kernel=False)

    def _predict(self, X: pd.DataFrame, codes: dict) -> tuple[np.ndarray, np.ndarray]:
        """Fit score and churn risk (NaN without a churn model) of every row of ``X``."""
        fit = self._positive(self.scorer.fit_model, X, codes)
        churn = (self._positive(self.scorer.churn_model, X, codes) if self.scorer.churn_model is not None
                 else np.full(len(X), np.nan))
        return fit, churn

    def _background(self):
        """The one worker thread that runs :meth:`_predict` (started on first use)."""
        if self.closed:
            raise RuntimeError("this scoring session is closed")
        if self._predict_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._predict_pool = ThreadPoolExecutor(1, thread_name_prefix="icpml-predict")
        return self._predict_pool

    def _shap_reasons(self, X: pd.DataFrame, parallel: bool) -> list[str]:
        vals, cols = self._shap_values(X, parallel)
        top = np.argsort(-np.abs(vals), axis=1, kind="stable")[:, :3]
        data = X[cols].to_numpy(dtype=object)
        return ["; ".join(_contribution_words(cols[j], data[i, j], vals[i, j])
                          for j in top[i] if abs(vals[i, j]) > 1e-9)
                for i in range(len(X))]

    def _shap_values(self, X: pd.DataFrame, parallel: bool) -> tuple[np.ndarray, list[str]]:
        """Exact SHAP of the fit model on ``X``: in worker processes when it pays.

        shap's tree algorithm holds the GIL, so threads do not help. With ``parallel`` (from
        the second chunk of a stream on), a chunk of at least :data:`_PARALLEL_SHAP_ROWS`
        rows is cut into blocks computed by a pool of ``scoring_threads`` processes (started
        once per session, the model sent once). Each block is explained exactly as a whole
        chunk would be, additivity check included, so the values do not change.
        """
        fit = self.scorer.fit_model
        workers = scoring_threads(len(X))
        if not parallel or workers < 2 or len(X) < _PARALLEL_SHAP_ROWS:
            e = shap_explain(fit, X)
            return e.values.to_numpy(), list(e.values.columns)
        if self._shap_pool is None:
            if self.closed:
                raise RuntimeError("this scoring session is closed")
            import multiprocessing
            import pickle
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child of a process that has run OpenMP can hang
            self._shap_pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_shap_worker_init, initargs=(pickle.dumps(fit),))
        edges = np.linspace(0, len(X), 2 * workers + 1).astype(int)
        blocks = [X.iloc[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
        parts = list(self._shap_pool.map(_shap_worker, blocks))
        return np.vstack([v for v, _ in parts]), parts[0][1]

    @property
    def pools(self) -> list:
        """The executors this session has started and not yet shut down."""
        return [p for p in (self._shap_pool, self._predict_pool) if p is not None]

    def close(self) -> None:
        """Stop the SHAP worker processes and the prediction thread, if any were started;
        drop the caches. Idempotent; a closed session starts no new pool."""
        self.closed = True
        for name in ("_shap_pool", "_predict_pool"):
            pool = getattr(self, name)
            setattr(self, name, None)
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self.known.clear()
        self.memo.clear()


#: A model not compiled at registration is compiled by the session on a chunk this large.
_COMPILE_MIN_ROWS = 5_000

#: ``--explain`` chunks at least this large are explained by worker processes.
_PARALLEL_SHAP_ROWS = 20_000
_WORKER_MODEL = None
_WORKER_LIMITS = None


class ScoreStream:
    """One stream of chunks scored in a :class:`ScoringSession`: what the stream's chunks
    share (the ids met so far, the row count, the data issues summed for one warning).

    :meth:`ScoringSession.score_batches` runs one; a caller that interleaves several
    scorers over the same batches (:class:`icpml.products.ProductScorers`) runs one per
    scorer, so each logs its issues once for the whole stream.

    Parameters
    ----------
    session : ScoringSession
        The open session that scores the chunks.
    explain : bool, default False
        SHAP ``top_reasons`` (see :meth:`Scorer.score`).
    label : str, default "scoring"
        The warning's prefix (e.g. ``product addon``).
    """

    def __init__(self, session: ScoringSession, *, explain: bool = False,
                 label: str = "scoring") -> None:
        self.session, self.explain, self.label = session, explain, label
        self.tally = _IssueTally()
        self.seen_ids = SeenIds()
        self.chunks = 0
        self.rows = 0  # rows before the next chunk: a table without ids is numbered on

    def score(self, part: pd.DataFrame) -> pd.DataFrame:
        """Scores of one chunk (at most :attr:`Scorer.chunk_size` rows), the columns of
        :meth:`Scorer.score`, in input order."""
        # worker processes for SHAP only once the job has proven large (their start-up,
        # a few seconds, is more than a single chunk would save)
        out, issues = self.session._score_chunk(part, self.explain, parallel=self.chunks > 0,
                                                seen_ids=self.seen_ids, first_row=self.rows)
        self.tally.add(issues, len(part))
        self.chunks += 1
        self.rows += len(part)
        return out

    def finish(self) -> None:
        """Log the stream's data issues, once (nothing when there were none)."""
        if self.tally.counts:
            log.warning("%s: %s", self.label, self.tally.message())
        self.tally = _IssueTally()


def _shap_worker_init(model_bytes: bytes) -> None:
    import pickle

    from threadpoolctl import threadpool_limits

    global _WORKER_MODEL, _WORKER_LIMITS
    _WORKER_MODEL = pickle.loads(model_bytes)
    # one OpenMP thread per worker: the workers are the parallelism (no spinning teams)
    _WORKER_LIMITS = threadpool_limits(1, user_api="openmp")


def _shap_worker(X: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    e = shap_explain(_WORKER_MODEL, X)
    return e.values.to_numpy(), list(e.values.columns)


class SeenIds:
    """The ids met so far in one scoring stream, to flag blank and repeated ids.

    Holds one sorted array of the 64-bit hashes (pandas' ``hash_pandas_object``) of the
    trimmed ids seen; memory is 8 bytes per distinct id.
    """

    def __init__(self) -> None:
        self._hashes = np.empty(0, dtype=np.uint64)

    def issues(self, column: str, ids: pd.Series) -> list[DataIssue]:
        """Blank ids, and ids already met in this chunk or an earlier one; the chunk's ids
        are then remembered. An id's first row is not flagged, each later one is. Ids
        compare as written, after trimming spaces.

        Parameters
        ----------
        column : str
            The id column's name (for the issue's words).
        ids : pandas.Series of string
            One chunk's ids, in row order.
        """
        text = ids.str.strip()
        blank = (text.isna() | (text == "")).to_numpy(bool)
        out = []
        if blank.any():
            out.append(DataIssue(column, "blank id", blank))
        keyed = np.flatnonzero(~blank)
        if not len(keyed):
            return out
        h = pd.util.hash_pandas_object(text.iloc[keyed], index=False).to_numpy()
        before = self._hashes
        pos = np.searchsorted(before, h).clip(max=max(len(before) - 1, 0))
        rep = (before[pos] == h) if len(before) else np.zeros(len(h), dtype=bool)
        rep |= pd.Series(h).duplicated().to_numpy()
        # two sorted runs: the stable sort (timsort) merges them in linear time
        self._hashes = np.sort(np.concatenate([before, np.sort(h)]), kind="stable")
        if rep.any():
            again = np.zeros(len(ids), dtype=bool)
            again[keyed[rep]] = True
            out.append(DataIssue(column, "duplicate id", again, ids[again]))
        return out


def _issue_words(issues: list[DataIssue], n: int) -> pa.Array:
    """Each row's own data issues in words, "" where it has none."""
    parts = []
    for issue in issues:
        if issue.rows is None:
            parts.append(pa.array(np.full(n, issue.words(), dtype=object), type=pa.string()))
        elif issue.values is None:
            parts.append(_only(pa.array(np.full(n, issue.words(), dtype=object), type=pa.string()),
                               issue.rows))
        else:
            row_words = np.full(n, None, dtype=object)
            codes, uniques = pd.factorize(issue.values.astype(str))
            row_words[issue.rows] = np.array([issue.words(u) for u in uniques], dtype=object)[codes]
            parts.append(pa.array(row_words, type=pa.string()))
    return _join_words(parts, n)
