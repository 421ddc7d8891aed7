"""The criterion type: ONE operator table renders each criterion as a mask, SQL (sqlglot), pandas and words."""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlglot
from sqlglot import expressions as sqlx

from icpml._vocab import MISSING
from icpml.data import spelling_key
from icpml.errors import ConfigError
from icpml.schema import (
    CURRENCY_AFTER_MINUS,
    CURRENCY_CODES,
    CURRENCY_END,
    CURRENCY_SIGNS,
    GROUP_CHARS,
    GROUP_CLASS,
    GROUPED_NUMBER,
    GROUPED_NUMBER_SQL,
    MINUS_SPACES,
    PARENS,
    PERCENT_END,
    PLUS_SIGN,
)

SCHEMA_VERSION = "1.0"


Op = Literal["in", "not_in", "between", "<", "<=", ">", ">=", "==", "is_missing"]


# ----------------------------------------------------------------------------- operators
@dataclass(frozen=True)
class _Operator:
    """One operator, defined once; every rendering is derived from these fields.

    ``family`` says what the operator compares: ``numeric`` (``bounds``: each a
    comparison and the criterion attribute holding its bound), ``category`` (the
    criterion's ``values``; ``negate`` for ``not_in``) or ``missing``. A ``category``
    operator whose values are numbers is a *code set* (``channel = 2``,
    ``risk_class in {1, 4}``) on a numeric column: every rendering compares the cell read
    as a number with the values (``IN (1, 4)`` in SQL, ``.isin([1, 4])`` in pandas), see
    :meth:`Criterion.is_code`. ``word`` is how a
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


_NUMBER_RX = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"  # ASCII digits, as SQL


_CURRENCY_MARKS = (*CURRENCY_SIGNS, *CURRENCY_CODES)  # as icpml.schema reads numbers

#: Text of the characters ``0-9 . e E + -`` that is no number (:data:`_NUMBER_RX`), as GLOB
#: patterns DuckDB and SQLite read alike: a sign after a digit or a sign, two dots, two
#: exponents, a dot in the exponent, an exponent without digits before or after it, a
#: trailing sign. Exactly :data:`_NUMBER_RX` with a digit, on every such text up to 6
#: characters (the portable SQL's cast must not meet '1-2': DuckDB raises, SQLite reads 1).
_NOT_A_NUMBER = ("*[0-9.][+-]*", "*[+-][+-]*", "*.*.*", "*[eE]*[eE]*", "*[eE]*.*", "[eE]*",
                 "[+-][eE]*", ".[eE]*", "[+-].[eE]*", "*[eE]", "*[eE][+-]", "*[+-]")

#: Non-ASCII spaces the SQL folds like a space (NFKC does in :func:`spelling_key`): no-break,
#: figure, narrow no-break and ideographic space (text pasted from web pages and CJK input).
_WIDE_SPACES = (0xA0, 0x2007, 0x202F, 0x3000)


#: Whitespace the SQL strips around a number, as Python's ``str.strip`` in icpml's reader
#: does: tab, space and the Unicode space separators ("-\\u00a012" is -12). Line breaks and
#: other control characters are left out: they would break the exported SQL's lines.
_UNICODE_SPACES = "".join(map(chr, (0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)))
_SQL_SPACES = "\t " + _UNICODE_SPACES
#: The same as a bracket expression (``\\s``: the ASCII ones, in RE2 and POSIX alike).
_RX_SPACE = "[\\s" + _UNICODE_SPACES + "]"


def _column_schema(schema: dict | None, column: str) -> dict:
    return ((schema or {}).get("columns") or {}).get(column) or {}


def _number_format(info: dict) -> dict | None:
    """How the exports read the text of a numeric column (None: no schema, plain numbers).

    As :func:`icpml.schema.coerce` reads it, whatever discovery saw: ``currency`` marks
    around the number, a trailing ``%`` when the column had them (``percent``), grouping
    characters other than the ``decimal`` one where they group thousands, a Unicode minus
    and an accounting negative ``(12)``. A prospect list's "$45", "1,194" or "(1,200)" is a
    number to ``icpml score``; the filters must not read NULL or another number there.
    """
    if not info:
        return None
    return {"currency": list(_CURRENCY_MARKS), "percent": bool(info.get("percent")),
            "decimal": info.get("decimal") or "."}


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

    def one_of(self, col: str, keys: list[str], digits: bool = False) -> pd.Series:
        ukeys = self._fold(col)[1]
        if digits:
            ukeys = np.array([_digit_key(k) for k in ukeys], dtype=object)
        return self._by_value(col, np.isin(ukeys, keys), False)

    def missing(self, col: str, known: list[str] | None = None) -> pd.Series:
        ukeys = self._fold(col)[1]
        miss = (ukeys == "") | (~np.isin(ukeys, known) if known is not None else False)
        return self._by_value(col, np.asarray(miss, dtype=bool), True)

    def num_missing(self, x: pd.Series) -> pd.Series:
        return x.isna()

    @staticmethod
    def num_in(x: pd.Series, values: list[float]) -> pd.Series:
        return x.isin(values).fillna(False).astype(bool)

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
    ``casefold`` ("ß" stays), so both foldings of each value are listed. SQL has no
    NFKC: compatibility spellings seen at discovery (the schema's ``aliases``) and the
    full-width forms of each value are listed too (:func:`_text_keys`); other unseen
    compatibility spellings are not folded in SQL; the non-ASCII spaces of
    :data:`_WIDE_SPACES` are. Numbers are cast only when the text looks like one
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
                t = sqlx.RegexpReplace(this=t, expression=sqlx.Literal.string(
                    "[\\s" + "".join(map(chr, _WIDE_SPACES)) + "]+"),
                    replacement=sqlx.Literal.string(" "))
            else:
                for code in ((9, 10, 11, 12, 13) if self.sqlite else (9,)) + _WIDE_SPACES:
                    ch = (sqlx.Anonymous(this="CHAR", expressions=[sqlx.Literal.number(code)])
                          if self.sqlite else chr(code))
                    t = self._replace(t, ch, " ")
                for _ in range(6):
                    t = self._replace(t, "  ", " ")
            self._folded[col] = sqlx.Lower(this=sqlx.Trim(this=t))
        return self._folded[col].copy()

    def _strip(self, x: sqlx.Expression) -> sqlx.Expression:
        """``x`` without Python's leading and trailing whitespace (:data:`_RX_SPACE`): a
        regular expression where the dialect has them, else ``TRIM`` of those characters."""
        if not self.regex:
            return sqlx.Trim(this=x, expression=sqlx.Literal.string(_SQL_SPACES))
        for rx in (f"^{_RX_SPACE}+", f"{_RX_SPACE}+$"):
            x = sqlx.RegexpReplace(this=x, expression=sqlx.Literal.string(rx),
                                   replacement=sqlx.Literal.string(""))
        return x

    def num(self, col: str, fmt: dict | None) -> sqlx.Expression:
        if fmt is None:  # no schema: the cell as it is, cast when it looks like a number
            return self._cast(sqlx.Trim(this=sqlx.Cast(this=self.col(col), to=self._TEXT.copy())),
                              self.col(col))
        text, sign = self._number_text(col, fmt)
        value = self._cast(text, text)
        if self.portable or self.dialect in ("duckdb", "sqlite"):  # '1e400': infinite, no number
            for inf in ("1e999", "-1e999"):
                value = sqlx.Nullif(this=value, expression=sqlx.Literal.number(inf))
        return sqlx.Paren(this=sqlx.Mul(this=value, expression=sign))

    def _number_text(self, col: str, fmt: dict) -> tuple[sqlx.Expression, sqlx.Expression]:
        """The text of a numeric cell cleaned as icpml reads it (see :func:`_number_format`),
        and its sign (-1 for an accounting negative "(12)" and, without regular expressions,
        for a leading minus taken off the text)."""
        t = self._replace(self._strip(self.text(col)), "\u2212", "-")
        paren = sqlx.Like(this=t.copy(), expression=sqlx.Literal.string("(_%)"))
        sign = sqlx.Case(ifs=[sqlx.If(this=paren, true=sqlx.Literal.number(-1))],
                         default=sqlx.Literal.number(1))
        inner = self._strip(sqlx.Substring(this=t.copy(), start=sqlx.Literal.number(2),
                                           length=sqlx.Sub(this=sqlx.Length(this=t.copy()),
                                                           expression=sqlx.Literal.number(2))))
        x = sqlx.Case(ifs=[sqlx.If(this=paren.copy(), true=inner)], default=t)
        groups = [g for g in GROUP_CHARS if g != fmt["decimal"]]
        if self.regex:  # marks only at either end; separators only where they group thousands
            x = self._drop_marks(x, fmt)
            stripped = x.copy()
            for g in groups:
                stripped = self._replace(stripped, g, "")
            grouped = sqlx.RegexpLike(this=x.copy(), expression=sqlx.Literal.string(
                GROUPED_NUMBER_SQL[fmt["decimal"]]))
            stray = sqlx.RegexpLike(this=x.copy(), expression=sqlx.Literal.string(
                "[" + "".join(groups) + "]"))
            x = sqlx.Case(ifs=[sqlx.If(this=grouped, true=stripped),
                               sqlx.If(this=stray, true=sqlx.Null())], default=x)
        else:
            # no regular expressions (portable, SQLite, whose parser nests ~30 calls deep): a
            # leading minus goes into the sign, marks and spaces are trimmed off both ends (the
            # letters of the currency codes, as a set), every separator is dropped
            x = sqlx.Trim(this=x, expression=sqlx.Literal.string("+" + _SQL_SPACES),
                          position="LEADING")
            minus = sqlx.Like(this=x.copy(), expression=sqlx.Literal.string("-%"))
            sign = sqlx.Mul(this=sign, expression=sqlx.Case(
                ifs=[sqlx.If(this=minus, true=sqlx.Literal.number(-1))],
                default=sqlx.Literal.number(1)))
            ends = "".join(dict.fromkeys("".join(fmt["currency"]))) + _SQL_SPACES
            x = sqlx.Trim(this=x, expression=sqlx.Literal.string("-" + ends), position="LEADING")
            x = sqlx.Trim(this=x, expression=sqlx.Literal.string(
                ends + ("%" if fmt["percent"] else "")), position="TRAILING")
            for g in groups:
                x = self._replace(x, g, "")
        if fmt["decimal"] != ".":
            x = self._replace(x, fmt["decimal"], ".")
        return self._strip(x), sign

    def _drop_marks(self, x: sqlx.Expression, fmt: dict) -> sqlx.Expression:
        """The regular-expression steps of :func:`icpml.schema._parse_numbers` after the
        parentheses: currency marks at either end ("-$12" keeps its minus), spaces after a
        leading minus, a leading plus, a trailing percent sign; Python's ``\\s`` spelled out
        (:data:`_RX_SPACE`), groups plain."""
        marks, sp = "(" + "|".join(re.escape(m) for m in fmt["currency"]) + ")", _RX_SPACE
        for rx, to in ((f"^-{sp}*{marks}{sp}*", "-"), (f"^{marks}{sp}*", ""),
                       (f"{sp}*{marks}$", ""), (f"^-{sp}+", "-"), (f"^\\+{sp}*", ""),
                       *([(f"{sp}*%$", "")] if fmt["percent"] else [])):
            x = sqlx.RegexpReplace(this=self._strip(x), expression=sqlx.Literal.string(rx),
                                   replacement=sqlx.Literal.string(to))
        return x

    def _cast(self, text: sqlx.Expression, x: sqlx.Expression) -> sqlx.Expression:
        """``x`` as a double where its trimmed ``text`` is a number, else NULL: ``TRY_CAST``
        where the dialect has it; otherwise a guard that admits exactly the number grammar
        (:data:`_NOT_A_NUMBER`: CAST('abc' AS REAL) is 0 in SQLite, an error elsewhere)."""
        if self.try_cast:
            return sqlx.TryCast(this=x, to=self._DOUBLE.copy())
        ok = sqlx.and_(sqlx.NEQ(this=text, expression=sqlx.Literal.string("")),
                      sqlx.EQ(this=sqlx.Trim(this=text.copy(), expression=sqlx.Literal.string(self._DIGITS)),
                             expression=sqlx.Literal.string("")),
                      sqlx.NEQ(this=sqlx.Trim(this=text.copy(), expression=sqlx.Literal.string(".eE+-")),
                              expression=sqlx.Literal.string("")),
                      sqlx.Not(this=sqlx.Paren(this=sqlx.or_(*(
                          sqlx.Glob(this=text.copy(), expression=sqlx.Literal.string(g))
                          for g in _NOT_A_NUMBER)))))
        return sqlx.Case(ifs=[sqlx.If(this=ok, true=sqlx.Cast(this=x.copy(), to=self._DOUBLE.copy()))])

    def cmp(self, x: sqlx.Expression, op: str, bound: float) -> sqlx.Expression:
        return _COMPARE[op][1](this=x, expression=sqlx.Literal.number(_sqlnum(bound)))

    def one_of(self, col: str, keys: list[str], digits: bool = False) -> sqlx.Expression:
        if not keys:
            return sqlx.false()
        if digits:  # '007' typed as INT 7: compare without leading zeros ('0' -> ''), never a blank
            bare = sorted({k.lstrip("0") for k in keys})
            x = sqlx.Trim(this=self._fold(col), expression=sqlx.Literal.string("0"), position="LEADING")
            return self.all_([sqlx.In(this=x, expressions=[sqlx.Literal.string(k) for k in bare]),
                              sqlx.NEQ(this=self._fold(col), expression=sqlx.Literal.string(""))])
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
    def num_in(x: sqlx.Expression, values: list[float]) -> sqlx.Expression:
        return sqlx.In(this=x, expressions=[sqlx.Literal.number(_sqlnum(v)) for v in values])

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
    :func:`icpml.data.spelling_key` (``.str.normalize("NFKC").str.split().str.join(" ")
    .str.casefold()``).
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
        return (f'{self.col(col)}.astype("string").str.normalize("NFKC").str.split().str.join(" ")'
                '.str.casefold()')

    def num(self, col: str, fmt: dict | None) -> str:
        # without a number format the text is still parsed like the SQL's cast: a cell that
        # does not look like a number ('N/A', '-') is NaN, never a TypeError on a str column
        number = json.dumps(f"^({_NUMBER_RX[1:-1]})$")
        if fmt is None:
            return f'{self.col(col)}.astype("string").str.strip().str.extract({number}, expand=False).astype("float")'

        def sub(pattern: str, repl: str = "") -> str:
            return f".str.replace({json.dumps(pattern, ensure_ascii=False)}, {json.dumps(repl)}, regex=True)"

        # the steps of icpml.schema._parse_numbers, with its patterns
        t = f'{self.col(col)}.astype("string").str.strip()' + sub("\u2212", "-")
        sign = f'(1 - 2 * {t}.str.fullmatch({json.dumps(PARENS)}).fillna(False).astype("float"))'
        x = t + sub(f"^{PARENS}$", r"\1") + ".str.strip()" + sub(CURRENCY_AFTER_MINUS, "-")
        x += sub(CURRENCY_END) + ".str.strip()" + sub(MINUS_SPACES, "-") + sub(PLUS_SIGN)
        if fmt["percent"]:
            x += sub(PERCENT_END)
        d = fmt["decimal"]
        # separators only where they group thousands; elsewhere the cell is no number ("1,5")
        x += sub(f"^(?!(?:{GROUPED_NUMBER[d]})$).*{GROUP_CLASS[d]}.*$", "x") + sub(GROUP_CLASS[d])
        if d != ".":
            x += f'.str.replace({json.dumps(d)}, ".", regex=False)'
        # an overflowing '1e400' is no number to icpml ("infinite"), not inf
        return (f'({x}.str.extract({number}, expand=False).astype("float")'
                f'.replace([1e999, -1e999], 0 * 1e999) * {sign})')

    @staticmethod
    def cmp(x: str, op: str, bound: float) -> str:
        return f"({x} {op} {_sqlnum(bound)})"

    def one_of(self, col: str, keys: list[str], digits: bool = False) -> str:
        if not keys:
            return self.false()
        x = self._fold(col)
        if digits:  # '007' read by read_csv as 7 (or 7.0 beside blanks): compare the bare number
            x += (r'.str.replace(r"^(\d+)\.0*$", r"\1", regex=True)'
                  r'.str.replace(r"^0+(?=\d)", "", regex=True)')
        return f"{x}.isin({json.dumps(keys, ensure_ascii=False)})"

    def missing(self, col: str, known: list[str] | None = None) -> str:
        if known is not None:
            return f"~{self.one_of(col, known)}"
        return f'({self.col(col)}.isna() | {self._fold(col)}.isin([""]))'

    @staticmethod
    def num_missing(x: str) -> str:
        return f"{x}.isna()"

    @staticmethod
    def num_in(x: str, values: list[float]) -> str:
        return f"{x}.isin([{', '.join(_sqlnum(v) for v in values)}])"

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
        # code: an empty disjunction, a boolean Series on df's index (not an ndarray)
        return "df.iloc[:, :0].any(axis=1)" if self.code else "(index != index)"


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
    values : tuple of str or number, default ()
        Category values for ``in`` / ``not_in`` / ``==``. Numbers (a code set on a
        numeric column, ``channel = 2``) are kept as numbers, integral ones as ``int``.
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
    Number values on a numeric column (:meth:`is_code`) compare the cell read as a number,
    so a prospect's ``2``, ``2.0`` and ``"2"`` all meet ``channel = 2``.

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

    def __post_init__(self):
        if any(_is_number(v) for v in self.values):  # 2.0 and np.int64(2) are the code 2; a set is sorted
            nums = sorted({_code_value(v) for v in self.values if _is_number(v)})
            object.__setattr__(self, "values", (*nums, *(v for v in self.values if not _is_number(v))))

    def is_code(self, schema: dict | None = None, s: pd.Series | None = None) -> bool:
        """Whether this is a code set: a category operator with number values on a numeric column.

        The column counts as numeric unless the schema says it is categorical or boolean
        (``values: [1, 4]`` on a categorical column compares text) or, without a schema,
        the data ``s`` is boolean; text cells are then read as numbers (``"2.0"`` is 2).

        Parameters
        ----------
        schema : dict, optional
            The column schema (``CriteriaSet.schema``).
        s : pandas.Series, optional
            The column's data, when rendering a mask without a schema.

        Returns
        -------
        bool
        """
        spec = OPERATORS[self.op]
        nums = [v for v in self.values if v != MISSING]
        known = _column_schema(schema, self.column).get("kind")
        numeric_data = (known is None and s is not None and pd.api.types.is_numeric_dtype(s)
                        and not pd.api.types.is_bool_dtype(s))
        if ((known == "numeric" or numeric_data) and nums
                and all(re.fullmatch(_NUMBER_RX, str(v).strip()) for v in nums)):
            return spec.family == "category"  # values: ["2"] on a numeric column: the number 2
        if spec.family != "category" or not nums or not all(_is_number(v) for v in nums):
            return False
        if known is not None:
            return known == "numeric"
        return s is None or not pd.api.types.is_bool_dtype(s)

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
        if family == "numeric" or self.is_code(schema, s):
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
        with_missing = MISSING in self.values and not spec.negate
        if self.is_code(schema, ops.series(col)):  # a code set: the cell read as a number
            x = ops.num(col, _number_format(info))
            hit = ops.num_in(x, sorted(float(v) for v in self.values if v != MISSING))
            if spec.negate:
                return ops.all_([ops.not_(hit), ops.not_(ops.num_missing(x))])
            return ops.any_([hit, ops.num_missing(x)]) if with_missing else hit
        wanted = [str(v) for v in self.values if v != MISSING]
        if kind == "boolean":  # to truth values, then to their spellings
            truth = {v == "True" for v in wanted if v in _BOOL_VALUES}
            if spec.negate:
                truth = {True, False} - truth
            keys = sorted({k for t in truth for k in _spellings(info, t)})
            hit = ops.one_of(col, keys)
            known = _spellings(info, True) + _spellings(info, False)
            return ops.any_([hit, ops.missing(col, known)]) if with_missing else hit
        digits = _digit_codes(info)
        if digits:
            keys = sorted({_digit_key(spelling_key(v)) for v in wanted})
        else:
            keys = sorted(_text_keys(wanted, info))
        hit = ops.one_of(col, keys, digits)
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
            if rest and getattr(self, attr) == getattr(self, rest[0][1]):  # a band of one value
                return f"{c} = {_num(getattr(self, attr))}"
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
        BOOLEAN both work; numbers the source writes as ``"$1,234.50"``, ``"(1,200)"``
        or ``"-\u00a012"`` are read as :func:`icpml.schema.coerce` reads them (currency
        marks at either end, separators only where they group thousands, accounting
        negatives, overflow as no number). Without regular expressions (no dialect: the
        portable SQL; SQLite) the cleaning is looser where icpml reads no number: a
        separator, mark or second sign inside the text is dropped ("1,5" reads 15, "--1"
        reads -1); every number icpml reads is read alike. Text padded with line breaks or
        other control characters is not stripped in SQL. Code sets compare numbers
        (``IN (1, 4)``). Digit codes of a categorical column ('02', '007', see :func:`_digit_codes`) compare without leading
        zeros (``LTRIM(..., '0') IN ('2', '7')``), so a column a warehouse typed INT still
        matches. Full-width spellings match when discovery saw them or they are the
        full-width form of a value. NULL never matches (except ``is_missing``). The
        expression is built once with sqlglot and rendered per dialect.

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

        With ``read_csv``'s defaults: text is NFKC-folded like :func:`icpml.data.spelling_key`;
        digit codes ('007', read as 7 or 7.0) compare without leading zeros; code sets
        compare numbers (``.isin([1, 4])``).

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


_DIGITS_RX = re.compile(r"\d+")


def _digit_codes(info: dict) -> bool:
    """Whether a categorical column holds digit codes ('02', '007', '12') that stay distinct
    without their leading zeros: a reader that guesses types (``pd.read_csv``, a warehouse
    column typed INT) turns them into numbers, so the exports compare the bare number
    (:func:`_digit_key`), and :func:`icpml.schema.coerce` reads a typed ``7`` as ``'007'``."""
    cats = [spelling_key(c) for c in info.get("categories") or ()] if info.get("kind") == "categorical" else []
    if not cats or not all(_DIGITS_RX.fullmatch(c) for c in cats):
        return False
    return len({_digit_key(c) for c in cats}) == len(cats)


def _digit_key(key: str) -> str:
    """A folded cell as a bare number when it is one ('007' -> '7', '7.0' -> '7', '0' -> '0')."""
    m = re.fullmatch(r"(\d+)(?:\.0*)?", key)
    if not m:
        return key
    return m.group(1).lstrip("0") or "0"


def _full_width(text: str) -> str:
    """ASCII text in its full-width form (the compatibility spelling NFKC folds back)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in text)


def _text_keys(wanted: list[str], info: dict) -> set[str]:
    """The spellings a category criterion lists: :func:`spelling_key` (what the mask and
    pandas compare, both NFKC-folded), and for SQL, which can only ``LOWER(TRIM(...))``: the
    plain lower-case fold, the schema's aliases of those categories seen at discovery
    (full-width, "STRASSE" for "Straße") and the full-width forms of each value (as written,
    lower-, upper- and title-cased; SQLite's ``LOWER`` leaves non-ASCII letters alone, so a
    full-width spelling in any other mix of cases is not matched there)."""
    plain = [" ".join(v.split()) for v in wanted]
    keys = {spelling_key(v) for v in wanted} | {v.lower() for v in plain}
    wanted_keys = {spelling_key(v) for v in wanted}
    for alias, cat in (info.get("aliases") or {}).items():
        if spelling_key(cat) in wanted_keys:
            a = " ".join(alias.split())
            keys |= {a.lower(), "".join(ch.lower() if ch.isascii() else ch for ch in a)}
    for v in plain:
        if any("!" <= ch <= "~" for ch in v):
            keys |= {_full_width(f) for f in (v, v.lower(), v.upper(), v.title())}
    return keys


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _code_value(v: Any) -> int | float:
    """A code as JSON and words show it: ``2.0`` -> ``2``."""
    x = float(v)
    return int(x) if x.is_integer() else x


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


def _fmtci(lo: float, hi: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not estimable"
    return f"{lo:.2f}-{hi:.2f}"
