"""One data contract: how each column's raw values are read, learned once and applied everywhere.

Discovery, scoring, ``icpml validate`` and retraining used to read values each their own way
(a spreadsheet's "1,234" was a number at discovery and "unknown" at scoring; one "unknown"
cell in a yes/no column blanked the whole column of its chunk). Now:

* :func:`learn_schema` looks at the *raw* account table once, at discovery, and records per
  column its kind (``numeric``, ``boolean`` or ``categorical``), how numbers are written
  (thousands and decimal separators, currency, percent), the yes/no spellings and the
  canonical category spellings. The result, :class:`Schema`, travels with the model (the
  :class:`~icpml.scoring.Scorer`) and, as :meth:`Schema.to_dict`, in ``criteria.json``.
* :func:`coerce` reads a table with a schema. Every cell is read on its own, from its raw
  value and the schema only, so a value reads the same at discovery and at scoring, and a
  score never depends on how a table is chunked. A cell that cannot be read becomes missing
  and is reported, per cell (:class:`CellIssues`, :func:`issue_table`); the rest of its
  column is kept.

Codes and spellings:

* A numeric column whose values are 2 to :data:`MAX_CODE_VALUES` distinct integers, with at
  least :data:`CODE_ROWS_PER_VALUE` cells per value, is a *code* (Channel 1/2, a risk class
  1-5): its ``codes`` are recorded and criteria on it are value sets (``channel = 2``,
  ``risk_class in {1, 4}``) compared as numbers, so ``2``, ``2.0`` and ``"2"`` are one value.
* A text column of digits some of which are zero-padded ('02', '007') is categorical (the
  padding is part of the code); a cell a type-guessing reader turned into ``7`` or ``7.0``
  reads as '007' when no other category collides with it.
* Category spellings are compared NFKC-normalised, case-folded and space-collapsed
  (``spelling_key``): 'Ｓａｌｅｓｆｏｒｃｅ', ' salesforce' and 'Salesforce' are one
  category, named by its NFKC spelling; the full-width spellings seen are kept as
  ``aliases`` for the SQL export, which cannot normalise.

The number format of a text column is detected from the whole column: a value that only one
reading accepts decides it ("21.72", "1.234.567", "1.234,5"); when every value fits both
readings ("4.061", "12.500") the column is *ambiguous*: it is read like the file's other
columns (or, with no other evidence, with the separator as a thousands separator, since a
group of exactly three digits after it in every value is what grouping looks like) and a
one-line warning names the column and the config key (``data.number_format``) that declares it.

The work is vectorised: each column's distinct values are parsed once and mapped back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

__all__ = ["Schema", "ColumnSchema", "CellIssues", "learn_schema", "coerce", "issue_table", "read_numbers", "read_dates",
           "date_unreadable", "numeric_codes", "MAX_CODE_VALUES",
           "NUMBER_FORMATS", "TRUE_SPELLINGS", "FALSE_SPELLINGS"]

#: Yes/no spellings accepted in a boolean column (compared after ``spelling_key``).
TRUE_SPELLINGS = ("1", "1.0", "t", "true", "y", "yes")
FALSE_SPELLINGS = ("0", "0.0", "f", "false", "n", "no")

#: ``data.number_format`` values -> (thousands separator, decimal separator).
NUMBER_FORMATS: dict[str, tuple[str | None, str]] = {
    "1,234.5": (",", "."), "1.234,5": (".", ","), "1 234,5": (" ", ","), "1 234.5": (" ", "."),
    "1'234.5": ("'", "."), "1234.5": (None, "."), "1234,5": (None, ","),
}

#: Cells that mean "no value" in a number or yes/no column (compared after case folding).
#: In a category column they stay values: "NA" may be North America, "None" an ERP choice.
NULL_TOKENS = frozenset({"na", "n/a", "n.a.", "nan", "null", "none", "nil", "-", "--", "#n/a", "?"})

#: A numeric column is a *code* (Channel 1/2, a risk class 1-5) when its values are integers,
#: 2 to this many distinct ones, each distinct value backed by at least :data:`CODE_ROWS_PER_VALUE`
#: cells on average. Criteria on a code name values and value sets (``channel = 2``,
#: ``risk_class in {1, 4}``), not ranges. (0/1 alone is a yes/no column.)
MAX_CODE_VALUES = 10

#: Fewest non-missing cells per distinct value for a numeric column to read as a code (a
#: tiny table whose sizes repeat is not coded).
CODE_ROWS_PER_VALUE = 5

#: Thousands separators seen in exports (the criteria's SQL and pandas filters drop them too).
GROUP_CHARS = (",", ".", " ", "'", "\u00a0", "\u202f")
#: Currency signs and codes a number may carry (dropped here and by the filters).
CURRENCY_SIGNS, CURRENCY_CODES = ("$", "€", "£", "¥"), ("USD", "EUR", "GBP", "CHF")
_MARK = "(?:[" + "".join(CURRENCY_SIGNS) + "]|" + "|".join(CURRENCY_CODES) + ")"
#: A currency mark at either end of a number (dropped), and one after a leading minus.
CURRENCY_END, CURRENCY_AFTER_MINUS = rf"^{_MARK}\s*|\s*{_MARK}$", rf"^-\s*{_MARK}\s*"
#: The other steps of :func:`_parse_numbers`: an accounting negative "(12)" (fullmatch, its
#: group the number), spaces after a leading minus, a leading plus, a trailing percent sign.
PARENS, MINUS_SPACES, PLUS_SIGN, PERCENT_END = r"\((.+)\)", r"^-\s+", r"^\+\s*", r"\s*%$"
_HAS_CURRENCY = rf"^\s*[-+(]?\s*{_MARK}|{_MARK}\s*\)?\s*$"


def _fold(value: object) -> str:
    """``icpml.data.spelling_key`` (kept here so that this module imports nothing of icpml)."""
    return " ".join(unicodedata.normalize("NFKC", str(value)).split()).casefold()


def _plain_fold(value: object) -> str:
    """The fold SQL can do (``LOWER(TRIM(...))``, spaces collapsed): no NFKC, no casefold."""
    return " ".join(str(value).split()).lower()


def _grouped_pattern(decimal: str, *, sql: bool = False) -> str:
    """A number whose integer part is grouped by thousands (one separator, not ``decimal``),
    for a full match.

    ``sql``: the same language as a regular expression SQL engines read alike (RE2, POSIX,
    ICU, Java), anchored: ASCII digits, plain groups, no escape but the dot's.
    """
    if sql:
        esc = {".": "\\."}
        alts = "|".join(f"[0-9]{{1,3}}({esc.get(g, g)}[0-9]{{3}})+" for g in GROUP_CHARS
                        if g != decimal)
        return f"^[+-]?({alts})({esc.get(decimal, decimal)}[0-9]+)?$"
    alts = "|".join(rf"\d{{1,3}}(?:{re.escape(g)}\d{{3}})+" for g in GROUP_CHARS if g != decimal)
    return rf"[+-]?(?:{alts})(?:{re.escape(decimal)}\d+)?"


#: Per decimal separator: a number grouped by thousands (fullmatch; ``GROUPED_NUMBER_SQL``:
#: the same for SQL engines), and the class of its grouping characters. The criteria's
#: pandas and SQL filters use these patterns.
GROUPED_NUMBER = {d: _grouped_pattern(d) for d in (".", ",")}
GROUPED_NUMBER_SQL = {d: _grouped_pattern(d, sql=True) for d in (".", ",")}
GROUP_CLASS = {d: "[" + re.escape("".join(g for g in GROUP_CHARS if g != d)) + "]" for d in (".", ",")}


@dataclass(frozen=True)
class ColumnSchema:
    """How one column's raw values are read (see :meth:`Schema.to_dict` for the fields).

    Parameters
    ----------
    kind : {"numeric", "boolean", "categorical"}
        How the column is read.
    thousands : str, optional
        Numeric: the thousands separator (``","``, ``"."``, ``" "``, ``"'"``) or None.
    decimal : str, default "."
        Numeric: the decimal separator.
    currency : bool, default False
        Numeric: cells may carry a currency sign, which is dropped.
    percent : bool, default False
        Numeric: cells may end in ``%`` (read as written, 12% -> 12).
    true, false : tuple of str
        Boolean: the spellings (after :func:`icpml.data.spelling_key`) read as
        True and False.
    categories : tuple of str
        Categorical: the canonical spellings seen at discovery.
    fold : str, default "spelling_key"
        Categorical: how spellings are compared (NFKC, spacing, case).
    codes : tuple of int
        Numeric: the values of a code column (see :func:`numeric_codes`); empty for
        a measure. Criteria on a code are value sets; cells are still read as numbers, so
        ``2``, ``2.0`` and ``"2"`` are one value.
    aliases : dict of str to str
        Categorical: spellings seen at discovery that SQL's ``LOWER(TRIM(...))`` cannot
        fold onto their category (full-width "Ｓａｌｅｓｆｏｒｃｅ", "STRASSE" for "Straße")
        -> the category; the SQL export lists them.
    integer : bool, default False
        Numeric: every value at discovery was a whole number. A later text cell such as
        "1.234" (a thousands dot, or a decimal?) is then flagged ``ambiguous number``
        (read as the schema says, 1.234, and named in the scoring warning).
    """

    kind: str
    thousands: str | None = None
    decimal: str = "."
    currency: bool = False
    percent: bool = False
    true: tuple[str, ...] = ()
    false: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    fold: str = "spelling_key"
    codes: tuple[int, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    integer: bool = False

    def to_dict(self) -> dict:
        """The column's reading as JSON-able data.

        Returns
        -------
        dict
            ``kind`` and the fields of that kind only (see :meth:`Schema.to_dict`).
        """
        if self.kind == "numeric":
            out = {"kind": "numeric", "thousands": self.thousands, "decimal": self.decimal,
                   "currency": self.currency, "percent": self.percent}
            out |= {"integer": True} if self.integer else {}
            return out | ({"codes": [int(v) for v in self.codes]} if self.codes else {})
        if self.kind == "boolean":
            return {"kind": "boolean", "true": list(self.true), "false": list(self.false)}
        out = {"kind": "categorical", "categories": list(self.categories), "fold": self.fold}
        return out | ({"aliases": dict(sorted(self.aliases.items()))} if self.aliases else {})

    @classmethod
    def from_dict(cls, d: Mapping) -> ColumnSchema:
        """Rebuild a column schema from :meth:`to_dict`'s output.

        Parameters
        ----------
        d : Mapping
            ``{"kind": ..., ...}``; absent fields take their defaults.

        Returns
        -------
        ColumnSchema
            The column's reading.

        Raises
        ------
        ValueError
            An unknown ``kind``.
        """
        kind = d["kind"]
        if kind not in ("numeric", "boolean", "categorical"):
            raise ValueError(f"unknown column kind {kind!r}")
        return cls(kind=kind, thousands=d.get("thousands"), decimal=d.get("decimal") or ".",
                   currency=bool(d.get("currency", False)), percent=bool(d.get("percent", False)),
                   true=tuple(d.get("true", TRUE_SPELLINGS if kind == "boolean" else ())),
                   false=tuple(d.get("false", FALSE_SPELLINGS if kind == "boolean" else ())),
                   categories=tuple(d.get("categories", ())), fold=d.get("fold", "spelling_key"),
                   codes=tuple(int(v) for v in d.get("codes", ())),
                   aliases=dict(d.get("aliases") or {}), integer=bool(d.get("integer", False)))


@dataclass
class Schema:
    """Per column, how raw values are read; learned by :func:`learn_schema`, applied by :func:`coerce`.

    Parameters
    ----------
    columns : dict of str to ColumnSchema
        Column -> its reading.
    warnings : list of str
        What learning noticed (ambiguous number formats, merged spellings); not serialised.
    version : int, default 1
        Version of the serialised contract.
    """

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list, compare=False)
    version: int = 1

    def to_dict(self) -> dict:
        """The JSON-able contract: ``{"version": 1, "columns": {column: {"kind": ..., ...}}}``.

        Numeric columns carry ``thousands``, ``decimal``, ``currency``, ``percent`` (and
        ``codes``, the values of a code column, see :func:`numeric_codes`); boolean
        columns ``true`` and ``false`` (spellings after ``spelling_key``); categorical columns
        ``categories`` (canonical spellings) and ``fold`` (``"spelling_key"``).

        Returns
        -------
        dict
            The contract stored in ``criteria.json`` and with every registered model.
        """
        return {"version": self.version, "columns": {c: s.to_dict() for c, s in self.columns.items()}}

    @classmethod
    def from_dict(cls, d: Mapping | None) -> Schema:
        """The schema :meth:`to_dict` wrote; an empty or ``None`` dict gives an empty schema.

        Parameters
        ----------
        d : Mapping or None
            A contract from :meth:`to_dict`.

        Returns
        -------
        Schema
            Without warnings.

        Raises
        ------
        ValueError
            A column of unknown kind (see :meth:`ColumnSchema.from_dict`).
        """
        if not d:
            return cls()
        return cls({c: ColumnSchema.from_dict(s) for c, s in (d.get("columns") or {}).items()},
                   version=int(d.get("version", 1)))

    @property
    def kinds(self) -> dict[str, str]:
        """The kind of each column.

        Returns
        -------
        dict of str to str
            Column -> ``numeric``, ``boolean`` or ``categorical``.
        """
        return {c: s.kind for c, s in self.columns.items()}

    def text_columns(self) -> list[str]:
        """Columns a CSV reader must hand over as text for :func:`coerce` to read them right.

        Numbers whose decimal separator is not "." (a reader would take "4.061" as 4.061) and
        categories of which some look like numbers (a reader would take "01" as 1). The rest
        read the same whatever type a reader guesses for a chunk: plain numbers parse to the
        same floats, yes/no cells fold to the same spellings (True, "true", 1, "1"), and
        text categories are text (a number-like cell there is unseen either way).

        Returns
        -------
        list of str
            Those columns, in schema order.
        """
        return [c for c, s in self.columns.items()
                if (s.kind == "numeric" and s.decimal != ".")
                or (s.kind == "categorical" and _number_like(s.categories))]


def _number_like(values: Iterable[str]) -> bool:
    """Whether a CSV reader could take any of ``values`` for a number or a boolean."""
    text = pd.Series(list(values), dtype=object).astype(str).str.strip()
    if text.empty:
        return False
    as_num = pd.to_numeric(text, errors="coerce")
    return bool(as_num.notna().any() or text.str.lower().isin(["true", "false"]).any())


@dataclass
class CellIssues:
    """Cells of one column that could not be read as the schema says; each is now missing.

    Parameters
    ----------
    column : str
        The column.
    kind : str
        ``not a number``, ``infinite``, ``not yes/no``, ``unseen`` (an unseen category keeps
        its text and is not missing) or ``ambiguous number`` ("1.234" in a column of whole
        numbers: read as the schema says, but it may mean 1234).
    rows : numpy.ndarray of bool
        Which rows of the table (by position).
    values : pandas.Series
        The raw values of those cells, indexed like the table.
    """

    column: str
    kind: str
    rows: np.ndarray
    values: pd.Series

    def cells(self) -> Iterable[tuple[str, object, object, str]]:
        """One tuple per affected cell.

        Yields
        ------
        tuple
            ``(column, row label, raw value, what happened)``.
        """
        for row, value in self.values.items():
            yield self.column, row, value, self.kind


def issue_table(issues: Iterable[CellIssues]) -> pd.DataFrame:
    """One row per unreadable cell: ``column``, ``row`` (index label), ``value`` (raw), ``issue``.

    Parameters
    ----------
    issues : iterable of CellIssues
        From :func:`coerce`.

    Returns
    -------
    pandas.DataFrame
        Columns ``column``, ``row``, ``value``, ``issue``; no rows without issues.
    """
    rows = [cell for i in issues for cell in i.cells()]
    return pd.DataFrame(rows, columns=["column", "row", "value", "issue"])


# ----------------------------------------------------------------------------- parsing
def _is_text(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def _parse_numbers(text: pd.Series, decimal: str, percent: bool) -> np.ndarray:
    """Each string of ``text`` as a float (NaN: unreadable or blank), the way a spreadsheet shows it.

    Blanks are missing; a currency symbol or code around the number is dropped; with
    ``percent`` a trailing "%" is dropped (the value kept as written); "(12)" is -12;
    separators other than ``decimal`` are removed only where they group thousands
    ("1,234.5" -> 1234.5 with decimal "."; "1,5" stays unreadable rather than becoming 15).
    """
    t = text.astype("string").str.strip()
    t = t.mask(t.str.casefold().isin(NULL_TOKENS).fillna(False), "")  # "N/A", "null": missing
    out = np.full(len(t), np.nan)
    todo = (t != "").fillna(False).to_numpy(bool)
    if decimal == ".":  # plain numbers first, by the parser read_csv uses (identical bits)
        plain = pd.to_numeric(t.where(todo), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        out = np.where(todo, plain, np.nan)
        todo &= np.isnan(out)
    if not todo.any():
        return out
    u = t[todo].str.replace("\u2212", "-", regex=False)
    neg = u.str.fullmatch(PARENS).fillna(False).to_numpy(bool)
    u = u.mask(pd.Series(neg, index=u.index), u.str.slice(1, -1)).str.strip()
    u = u.str.replace(CURRENCY_AFTER_MINUS, "-", regex=True)  # "-$12"
    u = u.str.replace(CURRENCY_END, "", regex=True).str.strip()
    u = u.str.replace(MINUS_SPACES, "-", regex=True).str.replace(PLUS_SIGN, "", regex=True)
    if percent:
        u = u.str.replace(PERCENT_END, "", regex=True)
    grouped = u.str.fullmatch(GROUPED_NUMBER[decimal]).fillna(False)
    u = u.mask(grouped, u.str.replace(GROUP_CLASS[decimal], "", regex=True))
    if decimal == ",":
        u = u.mask(u.str.contains(".", regex=False).fillna(False)).str.replace(",", ".", regex=False)
    num = pd.to_numeric(u, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    out[todo] = np.where(neg, -num, num)
    return out


def _ambiguous_grouping(s: pd.Series, spec: ColumnSchema) -> np.ndarray:
    """Text cells like "1.234" in a column of whole numbers read with decimal "." and no grouping.

    The schema reads them as 1.234; a European file means 1234. Which one cannot be told
    from the cell, so they are flagged (``ambiguous number``), never silently read.
    """
    if not spec.integer or spec.decimal != "." or spec.thousands is not None or not _is_text(s):
        return np.zeros(len(s), bool)
    text = s.astype("string").str.strip()
    # one dot, three digits after it ("1.234.567" is no decimal: it is "not a number")
    return text.str.fullmatch(r"[+-]?\d{1,3}\.\d{3}").fillna(False).to_numpy(bool)


def _numbers(s: pd.Series, spec: ColumnSchema) -> tuple[np.ndarray, np.ndarray]:
    """Floats of ``s`` and which non-blank cells were unreadable."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        num = (s.to_numpy(dtype=float) if isinstance(s.dtype, np.dtype)
               else s.astype("Float64").to_numpy(dtype=float, na_value=np.nan))
        return num, np.zeros(len(s), bool)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    uniques = pd.Series(np.asarray(uniques, dtype=object))
    vals = np.full(len(uniques), np.nan)
    bad_u = np.zeros(len(uniques), bool)
    is_num = uniques.map(lambda v: isinstance(v, (int, float, np.number))).to_numpy(bool)
    if is_num.any():  # Python numbers in an object column are numbers already
        vals[is_num] = uniques[is_num].astype(float).to_numpy()
    if (~is_num).any():
        text = uniques[~is_num].astype(str)
        parsed = _parse_numbers(text, spec.decimal, spec.percent)
        vals[~is_num] = parsed
        blank = (text.str.strip() == "") | text.str.strip().str.casefold().isin(NULL_TOKENS)
        bad_u[~is_num] = np.isnan(parsed) & ~blank.to_numpy(bool)
    return np.append(vals, np.nan)[codes], np.append(bad_u, False)[codes]  # code -1: missing


def _bool_key(v: object) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, float, np.number)):
        return "1" if v == 1 else "0" if v == 0 else str(v)
    return _fold(v)


def _booleans(s: pd.Series, spec: ColumnSchema) -> tuple[pd.Series, np.ndarray]:
    """Nullable booleans of ``s`` and which non-blank cells were not yes/no."""
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean"), np.zeros(len(s), bool)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    true, false = set(spec.true), set(spec.false)
    keys = [_bool_key(u) for u in uniques]
    value_u = np.array([k in true for k in keys] + [False], dtype=bool)
    known_u = np.array([k in true or k in false for k in keys] + [False], dtype=bool)
    bad_u = np.array([(k not in true and k not in false and k != "" and k not in NULL_TOKENS)
                      for k in keys] + [False])
    out = pd.Series(pd.arrays.BooleanArray(value_u[codes], ~known_u[codes]), index=s.index)
    return out, bad_u[codes]


def _digit_aliases(by_key: dict[str, str]) -> dict[str, str]:
    """Digit codes ('02', '007') under the forms a type-guessing reader gives them ('2', '7',
    '7.0'), when every category is digits and none collide without leading zeros; else ``{}``.
    A prospect file typed INT then reads 7 as '007', as the exports compare it."""
    if not by_key or not all(re.fullmatch(r"\d+", k) for k in by_key):
        return {}
    bare = {(k.lstrip("0") or "0"): v for k, v in by_key.items()}
    if len(bare) != len(by_key):
        return {}
    return bare | {f"{k}.0": v for k, v in bare.items()}


def _categories(s: pd.Series, spec: ColumnSchema, cache: dict | None
                ) -> tuple[pd.Series, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Canonical category text of ``s``, which cells hold a value never seen, and the codes."""
    known = spec.categories
    if cache is not None and "by_key" in cache:
        by_key = cache["by_key"]
    else:
        by_key = {_fold(v): v for v in known}
        by_key |= {k: v for k, v in _digit_aliases(by_key).items() if k not in by_key}
        if cache is not None:
            cache["by_key"] = by_key
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    raw = np.asarray(uniques, dtype=object)
    text = [v if isinstance(v, str) else str(v) for v in raw]
    keys = [_fold(v) for v in text]
    fixed = np.array([by_key.get(k, v) if k else None for k, v in zip(keys, text, strict=True)],
                     dtype=object)
    unseen_u = np.array([bool(known) and k != "" and k not in by_key for k in keys] + [False])
    blank = np.array([k == "" for k in keys] + [False])
    if blank.any():  # a blank or spaces-only cell is missing, not a category
        codes = np.where(blank[codes], -1, codes)
    if isinstance(s.dtype, pd.StringDtype) and all(f is None or f == v for f, v in zip(fixed, raw, strict=True)):
        out = s.astype("string").where(codes >= 0) if blank.any() else s.astype("string")
    else:  # gather each row's canonical text (Arrow take: no Python loop over rows)
        import pyarrow as pa

        taken = pa.array(fixed, type=pa.string()).take(pa.array(codes, mask=codes < 0))
        out = pd.Series(pd.arrays.ArrowStringArray(taken), index=s.index)
    return out, unseen_u[codes], (codes, fixed)


def coerce(df: pd.DataFrame, schema: Schema, *, columns: Iterable[str] | None = None,
           codes: dict | None = None, _cache: dict | None = None
           ) -> tuple[pd.DataFrame, list[CellIssues]]:
    """Read ``df``'s values as ``schema`` says; the same call at discovery, scoring and validation.

    Parameters
    ----------
    df : pandas.DataFrame
        Raw (text from a CSV, or typed from Parquet or a DataFrame) or already coerced; not
        modified.
    schema : Schema
        How each column is read.
    columns : iterable of str, optional
        Return exactly these columns (a schema column absent from ``df`` comes back all
        missing, of its kind, without an issue: the caller knows it is absent). By default
        every column of ``df``, the schema's ones typed and the others untouched.
    codes : dict, optional
        Receives, per categorical column, ``(codes, text)`` with ``text[codes]`` the canonical
        text and code -1 (missing) reading ``"(missing)"``, for the models to reuse.
    _cache : dict, optional
        Internal: a memo of category spellings already matched, kept by the
        caller between calls (the scorer's chunks).

    Returns
    -------
    tuple
        ``(X, issues)``: numbers as float64 (unreadable and infinite cells NaN), yes/no as
        nullable ``boolean``, categories as ``string`` in their canonical spelling (blank
        cells missing), same index as ``df``; and a list of :class:`CellIssues`. Each cell
        is read on its own: the result for a row does not depend on the other rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from icpml.schema import ColumnSchema, Schema, coerce
    >>> schema = Schema({"arr": ColumnSchema("numeric", thousands=".", decimal=","),
    ...                  "industry": ColumnSchema("categorical", categories=("SaaS",))})
    >>> raw = pd.DataFrame({"arr": ["1.234,5", "20", "lots"], "industry": ["SaaS", "saas ", None]})
    >>> X, issues = coerce(raw, schema)
    >>> X["arr"].tolist(), X["industry"].tolist()
    ([1234.5, 20.0, nan], ['SaaS', 'SaaS', <NA>])
    >>> [(i.column, i.kind) for i in issues]
    [('arr', 'not a number')]
    """
    wanted = list(df.columns) if columns is None else list(columns)
    out: dict[str, pd.Series] = {}
    issues: list[CellIssues] = []
    for c in wanted:
        spec = schema.columns.get(c)
        if c not in df.columns:
            if spec is None:
                continue
            out[c] = (pd.Series(np.nan, index=df.index) if spec.kind == "numeric"
                      else pd.Series(pd.NA, index=df.index,
                                     dtype="boolean" if spec.kind == "boolean" else "string"))
            continue
        s = df[c]
        if spec is None:
            out[c] = s
            continue
        if spec.kind == "numeric":
            num, bad = _numbers(s, spec)
            if bad.any():
                issues.append(CellIssues(c, "not a number", bad, s[bad]))
            odd = _ambiguous_grouping(s, spec)
            if odd.any():
                issues.append(CellIssues(c, "ambiguous number", odd, s[odd]))
            inf = np.isinf(num)
            if inf.any():
                issues.append(CellIssues(c, "infinite", inf, s[inf]))
                num = np.where(inf, np.nan, num)
            out[c] = pd.Series(num, index=df.index, name=c)
        elif spec.kind == "boolean":
            b, bad = _booleans(s, spec)
            if bad.any():
                issues.append(CellIssues(c, "not yes/no", bad, s[bad]))
            out[c] = b
        else:
            cache = None if _cache is None else _cache.setdefault(c, {})
            text, unseen, (cat_codes, fixed) = _categories(s, spec, cache)
            if unseen.any():
                issues.append(CellIssues(c, "unseen", unseen, text[unseen]))
            if codes is not None:
                from icpml._vocab import MISSING

                codes[c] = cat_codes, np.append(fixed, MISSING)
            out[c] = text
    X = pd.DataFrame(out, index=df.index)
    if columns is None:
        X = X[[c for c in df.columns if c in X.columns]]
    return X, issues


# ----------------------------------------------------------------------------- learning
def canonical_spellings(s: pd.Series) -> dict[str, str]:
    """Raw spelling -> its category: spellings equal after ``spelling_key`` become the most
    frequent of them, stripped and NFKC-normalised (ties: the first in sort order), so the
    result is deterministic and 'Ｓａｌｅｓｆｏｒｃｅ' is 'Salesforce'."""
    counts = s.astype("string").value_counts(dropna=True)
    counts = counts[[_fold(v) != "" for v in counts.index]]
    if counts.empty:
        return {}
    ranked = pd.DataFrame({"value": counts.index, "n": counts.to_numpy(),
                           "key": [_fold(v) for v in counts.index]})
    ranked = ranked.sort_values(["key", "n", "value"], ascending=[True, False, True], kind="stable")
    canonical = ranked.groupby("key", sort=False)["value"].first().map(
        lambda v: unicodedata.normalize("NFKC", v).strip())  # never a full-width spelling
    return {v: canonical[k] for v, k in zip(ranked["value"], ranked["key"], strict=True)}


@dataclass
class _NumberEvidence:
    """How a text column's non-blank values read as numbers under each decimal separator."""

    n: int  # non-blank cells
    ok: dict[str, int]  # decimal -> cells readable
    differ: bool  # some value reads as two different numbers
    sep: str | None  # the separator of the values that read differently
    example: str | None
    percent: bool
    currency: bool
    thousands: dict[str, str | None]  # decimal -> grouping separator seen


def _text_counts(s: pd.Series) -> pd.Series:
    """Cells of ``s`` as stripped text -> their count, most frequent first, without the
    blank and null-token cells ('', 'N/A', 'null'...). Stripped and case-folded once per
    distinct value, not per cell (a 1M-row column has a few hundred distinct values)."""
    vc = s.value_counts(dropna=True, sort=False)
    text = pd.Series([str(v) for v in vc.index], dtype="string").str.strip()
    keep = ((text != "") & ~text.str.casefold().isin(NULL_TOKENS)).to_numpy(bool)
    counts = pd.Series(vc.to_numpy()[keep], index=pd.Index(text[keep], dtype="string"))
    counts = counts.groupby(level=0, sort=False).sum()
    return counts.sort_values(ascending=False, kind="stable")


def _number_evidence(s: pd.Series) -> _NumberEvidence:
    counts = _text_counts(s)
    uniq = pd.Series(counts.index, dtype="string")
    w = counts.to_numpy()
    n = int(w.sum())
    percent = bool(n) and int(w[uniq.str.endswith("%").fillna(False).to_numpy(bool)].sum()) * 2 >= n
    currency = bool(uniq.str.contains(_HAS_CURRENCY, regex=True).fillna(False).any())
    parsed = {d: _parse_numbers(uniq, d, percent) for d in (".", ",")}
    ok = {d: int(w[~np.isnan(v)].sum()) for d, v in parsed.items()}
    both = ~np.isnan(parsed["."]) & ~np.isnan(parsed[","])
    diff = both & (parsed["."] != parsed[","])
    sep = example = None
    if diff.any():
        example = str(uniq[np.flatnonzero(diff)[0]])
        seps = {ch for v in uniq[diff] for ch in str(v) if ch in ".,"}
        sep = seps.pop() if len(seps) == 1 else None
    thousands: dict[str, str | None] = {}
    for d in (".", ","):
        good = ~np.isnan(parsed[d])
        grouped = uniq[good][uniq[good].str.fullmatch(r".*\d" + GROUP_CLASS[d] + r"\d{3}.*").fillna(False)]
        seen = [ch for v in grouped for ch in str(v) if ch in GROUP_CHARS and ch != d]
        thousands[d] = max(set(seen), key=seen.count) if seen else None
    return _NumberEvidence(n, ok, bool(diff.any()), sep, example, bool(percent), currency, thousands)


def _is_boolean(s: pd.Series) -> bool:
    """Only yes/no, true/false or 0/1 values (any case or spacing); "1.0"/"0.0" are floats."""
    if pd.api.types.is_bool_dtype(s):
        return True
    nonnull = s.dropna()
    if nonnull.empty or pd.api.types.is_float_dtype(s):
        return False
    if pd.api.types.is_numeric_dtype(s):
        return set(np.unique(nonnull.to_numpy())) <= {0, 1}
    keys = {_bool_key(v) for v in pd.unique(nonnull)} - NULL_TOKENS
    keys.discard("")
    if not keys or not keys <= set(TRUE_SPELLINGS) | set(FALSE_SPELLINGS):
        return False
    return not (keys <= {"1", "0", "1.0", "0.0"} and any("." in k for k in keys))  # floats


def learn_schema(df: pd.DataFrame, cfg, *, columns: Iterable[str] | None = None) -> Schema:
    """Learn how to read each typed column of the raw account table ``df``.

    Text columns of digit codes some of which are zero-padded ('02', '007') are categorical
    (the padding is part of the code); a numeric column of 2 to :data:`MAX_CODE_VALUES`
    integers gets its ``codes`` (:func:`numeric_codes`).

    Parameters
    ----------
    df : DataFrame
        The raw table (CSV text, or typed from Parquet or a DataFrame); not modified.
    cfg : Config
        Column roles: features (and ``columns.categorical``), post-sale columns and outcomes
        are learned; ``data.number_format`` declares number formats.
    columns : iterable of str, optional
        Only these columns (default: every feature, post-sale and outcome column present).

    Returns
    -------
    Schema
        With ``warnings``: ambiguous number formats (one line each, naming the column and
        ``data.number_format``) and merged category spellings. Columns entirely empty, or
        mostly text in a numeric role, are learned as categorical (validation reports them).
    """
    cols = cfg.columns
    forced = set(cols.categorical)
    outcomes = [m.column for m in cols.outcomes]
    if columns is None:
        columns = [*cols.feature_columns, *cols.post_sale, *outcomes]
    declared = dict(getattr(cfg.data, "number_format", None) or {})
    specs: dict[str, ColumnSchema] = {}
    evidence: dict[str, _NumberEvidence] = {}
    warnings: list[str] = []
    for c in dict.fromkeys(columns):
        if c not in df.columns or isinstance(df[c], pd.DataFrame):
            continue
        s = df[c]
        if c in forced:
            specs[c] = _categorical_spec(c, s, warnings)
        elif _is_boolean(s):
            specs[c] = ColumnSchema("boolean", true=TRUE_SPELLINGS, false=FALSE_SPELLINGS)
        elif not _is_text(s):
            specs[c] = ColumnSchema("numeric")
        elif c not in outcomes and _zero_padded(s):  # '007': the padding is part of the code
            specs[c] = _categorical_spec(c, s, warnings)
        else:
            ev = _number_evidence(s)
            if ev.n and max(ev.ok.values()) * 2 > ev.n:  # mostly numbers (the rest: data errors)
                evidence[c] = ev
            elif c in outcomes:
                specs[c] = ColumnSchema("numeric")
            else:
                specs[c] = _categorical_spec(c, s, warnings)
    # the file's convention, from columns that only one decimal separator reads fully
    votes = {d for ev in evidence.values() for d in (".", ",")
             if ev.ok[d] > ev.ok["," if d == "." else "."]}
    convention = votes.pop() if len(votes) == 1 else None
    for c, ev in evidence.items():
        specs[c] = _number_spec(c, ev, declared.get(c, declared.get("*")), convention, warnings)
    for c, spec in specs.items():  # numeric codes (Channel 1/2): criteria name values
        if spec.kind == "numeric":
            num = _numbers(df[c], spec)[0]
            finite = num[np.isfinite(num)]
            if len(finite) and bool(np.all(finite == np.round(finite))):
                spec = specs[c] = replace(spec, integer=True)
            codes = numeric_codes(num) if c not in outcomes else ()
            if codes:
                specs[c] = replace(spec, codes=codes)
    ordered = {c: specs[c] for c in dict.fromkeys(columns) if c in specs}
    return Schema(ordered, warnings)


def _zero_padded(s: pd.Series) -> bool:
    """Whether a text column holds digit codes some of which are zero-padded ('02', '007'):
    every non-blank cell digits only, and at least one with a leading zero."""
    text = pd.Series(_text_counts(s).index, dtype="string")
    if not len(text):
        return False
    return bool(text.str.fullmatch(r"\d+").all() and text.str.fullmatch(r"0\d+").any())


def numeric_codes(values: Iterable[float] | np.ndarray) -> tuple[int, ...]:
    """The values of a numeric *code* column, or ``()`` when the column is a measure.

    A code: every non-missing value an integer, 2 to :data:`MAX_CODE_VALUES` distinct
    values, and at least :data:`CODE_ROWS_PER_VALUE` non-missing cells per distinct value.
    The same rule decides at discovery (:func:`learn_schema`) and in candidate proposal.

    Parameters
    ----------
    values : array-like of float
        The column read as numbers (NaN: missing).

    Returns
    -------
    tuple of int
        The distinct values, sorted; empty when not a code.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return ()
    distinct = np.unique(v)
    if not (2 <= len(distinct) <= MAX_CODE_VALUES) or len(v) < CODE_ROWS_PER_VALUE * len(distinct):
        return ()
    if not np.all(distinct == np.round(distinct)):
        return ()
    return tuple(int(x) for x in distinct)


def _number_spec(c: str, ev: _NumberEvidence, fmt: str | None, convention: str | None,
                 warnings: list[str]) -> ColumnSchema:
    """The number format of text column ``c``: declared, decided by its values, or (ambiguous)
    the file's ``convention`` / grouping, with one warning line."""
    if fmt is not None:
        thousands, decimal = NUMBER_FORMATS[fmt]
    elif ev.ok["."] != ev.ok[","]:
        decimal = "." if ev.ok["."] > ev.ok[","] else ","
        thousands = ev.thousands[decimal]
    elif not ev.differ:  # integers only: the file's convention, for the decimals to come
        decimal = convention or "."
        thousands = ev.thousands[decimal]
    else:
        if convention is not None:
            decimal, why = convention, "like the file's other numbers"
        elif ev.sep is not None:  # a group of three digits after it everywhere: grouping
            decimal, why = ("," if ev.sep == "." else "."), f"with '{ev.sep}' as a thousands separator"
        else:
            decimal, why = ".", "with '.' as the decimal separator"
        thousands = ev.thousands[decimal]
        value = _parse_numbers(pd.Series([ev.example]), decimal, ev.percent)[0]
        other = _parse_numbers(pd.Series([ev.example]), "," if decimal == "." else ".", ev.percent)[0]
        warnings.append(
            f"column '{c}': numbers like '{ev.example}' fit two formats and were read "
            f"{why} ({ev.example} = {value:g}, not {other:g}); if that is wrong, declare it "
            f"in the config: data.number_format: {{{c}: '{'1.234,5' if decimal == '.' else '1,234.5'}'}}")
    return ColumnSchema("numeric", thousands=thousands, decimal=decimal, currency=ev.currency,
                        percent=ev.percent)


def read_numbers(s: pd.Series) -> tuple[np.ndarray, float]:
    """One column read as numbers the way :func:`learn_schema` + :func:`coerce` read it.

    Its format is detected from its own values (yes/no columns read as 1/0).

    Parameters
    ----------
    s : pandas.Series
        Raw values. Not modified.

    Returns
    -------
    tuple
        ``(floats, bad_share)``: a float array of ``len(s)`` (NaN: blank or
        unreadable) and the share (0-1) of non-blank cells that were unreadable.
    """
    if _is_boolean(s):
        b, _ = _booleans(s, ColumnSchema("boolean", true=TRUE_SPELLINGS, false=FALSE_SPELLINGS))
        return b.astype("Float64").to_numpy(dtype=float, na_value=np.nan), 0.0
    spec = (_number_spec(str(s.name), _number_evidence(s), None, None, [])
            if _is_text(s) else ColumnSchema("numeric"))
    num, bad = _numbers(s, spec)
    nonblank = int(bad.sum() + (~np.isnan(num)).sum())
    return num, (float(bad.sum()) / nonblank if nonblank else 0.0)


def _categorical_spec(c: str, s: pd.Series, warnings: list[str]) -> ColumnSchema:
    mapping = canonical_spellings(s)
    changed = {v: t for v, t in mapping.items() if v != t}
    if changed:
        shown = ", ".join(f"{v!r} -> {t!r}" for v, t in list(changed.items())[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        warnings.append(f"'{c}': {len(changed)} spelling(s) differing only in case, spacing or "
                        f"width were merged ({shown}{more})")
    aliases = {v.strip(): t for v, t in changed.items() if _plain_fold(v) != _plain_fold(t)}
    return ColumnSchema("categorical", categories=tuple(sorted(set(mapping.values()))),
                        aliases=aliases)


# ----------------------------------------------------------------------------- dates
_DMY = r"(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4})(?P<rest>(?:[ T].*)?)"


def read_dates(raw: pd.Series) -> pd.Series:
    """A date column as UTC timestamps (NaT: blank or unreadable), read the same way everywhere.

    * ISO 8601 with or without a time, with any offset ("Z", "+02:00", "-0500"): converted to
      UTC, so offsets that change with daylight saving mix freely; naive dates are taken as UTC.
    * Numeric dates ("12/04/2024", "12.04.2024", "12-04-2024", with or without a time) are read
      day-first or month-first for the *whole column*, never row by row: a value whose first
      field exceeds 12 ("13/04/2024") or a dotted date (the European "12.04.2024") makes the
      column day-first; one whose second field exceeds 12 ("04/13/2024") month-first; with no
      evidence either way the US month-first reading is kept. A column holding both kinds of
      evidence is unreadable as a whole (every such value is NaT, so the caller reports it).
    * A column of only 10-digit (or only 13-digit) integers is Unix time in seconds (or
      milliseconds), as CRM APIs such as HubSpot's write them.
    * Blank cells and null tokens ("N/A", "null", "-") are NaT; use :func:`date_unreadable`
      for the cells that held a value and could not be read.
    * Other spellings pandas reads ("Apr 12, 2024") are read as pandas reads them.

    A column that already holds datetimes is converted to UTC (naive ones taken as UTC).
    Unreadable values are NaT, never an error here: callers count them with
    :func:`date_unreadable` and raise their own one-line error.

    Parameters
    ----------
    raw : pandas.Series
        The raw column (text, integers or datetimes). Not modified.

    Returns
    -------
    pandas.Series
        Timezone-aware (UTC) timestamps, same length and index as ``raw``; NaT where a
        cell is blank, a null token, or unreadable.
    """
    if isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw):
        return pd.to_datetime(raw, utc=True)
    text = raw.astype("string").str.strip()
    text = text.mask(text.str.casefold().isin(NULL_TOKENS).fillna(False) | (text == ""))
    filled = text.dropna()
    lengths = filled.str.len().unique()
    if len(filled) and len(lengths) == 1 and filled.str.fullmatch(r"\d{10}|\d{13}").all():
        unit = "ms" if lengths[0] == 13 else "s"
        return pd.to_datetime(pd.to_numeric(text), unit=unit, utc=True, errors="coerce")
    when = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    missed = when.isna() & text.notna()
    if not missed.any():
        return when
    parts = text[missed].str.extract(_DMY)
    dmy = parts["a"].notna()
    if dmy.any():
        a = parts.loc[dmy, "a"].astype(int)
        b = parts.loc[dmy, "b"].astype(int)
        day_first = bool((a > 12).any() or (parts.loc[dmy, "sep"] == ".").any())
        month_first = bool((b > 12).any())
        if not (day_first and month_first):
            day, month = (a, b) if day_first else (b, a)
            iso = (parts.loc[dmy, "y"] + "-" + month.astype(str).str.zfill(2) + "-"
                   + day.astype(str).str.zfill(2) + parts.loc[dmy, "rest"].fillna(""))
            when = when.mask(dmy.reindex(when.index, fill_value=False),
                             pd.to_datetime(iso, errors="coerce", utc=True, format="ISO8601")
                             .reindex(when.index))
        missed = missed & ~dmy.reindex(missed.index, fill_value=False)
    if missed.any():  # other spellings pandas reads ("Apr 12, 2024")
        other = pd.to_datetime(text[missed], errors="coerce", utc=True, format="mixed")
        when = when.mask(missed, other.reindex(when.index))
    return when


def date_unreadable(raw: pd.Series, when: pd.Series) -> pd.Series:
    """Which cells of ``raw`` held a value that :func:`read_dates` could not read.

    Parameters
    ----------
    raw : pandas.Series
        The raw date column given to :func:`read_dates`. Not modified.
    when : pandas.Series
        What :func:`read_dates` returned for ``raw`` (same index).

    Returns
    -------
    pandas.Series
        Boolean, same index as ``raw``: True where the cell held a value (not blank,
        not a null token such as "N/A") and ``when`` is NaT.
    """
    text = raw.astype("string").str.strip()
    present = text.notna() & (text != "") & ~text.str.casefold().isin(NULL_TOKENS)
    return (when.isna() & present.fillna(False)).astype(bool)
