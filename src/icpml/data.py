"""Load and validate the account table.

:func:`load_accounts` reads CSV or Parquet (never modifying the file).
:func:`validate_accounts` checks the table against the config's column roles
and returns a *typed copy*; when anything is wrong it raises one
:class:`~icpml.errors.DataError` that lists every problem at once (missing
columns, wrong types, duplicate or missing ids, an empty table, too few
accounts for a cohort), so a user fixes their export once, not once per run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import unicodedata
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from icpml.config import Config
from icpml.errors import ConfigError, DataError, redact
from icpml.schema import (
    Schema,
    canonical_spellings,
    coerce,
    learn_schema,
    read_numbers,
)

__all__ = ["load_accounts", "iter_accounts", "iter_query", "load_source", "load_query", "validate_accounts", "normalize_categories", "spelling_key", "feature_kinds", "data_fingerprint", "coerce_bool"]

log = logging.getLogger(__name__)

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def _table_path(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """The path, checked to exist, and whether it is Parquet (else CSV)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"file '{p}' does not exist; check --data or data.path in the config", "data")
    suffixes = "".join(p.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return p, True
    if ".csv" in suffixes or suffixes.endswith(".txt"):
        return p, False
    raise DataError(f"'{p.name}' is neither CSV nor Parquet; export it as .csv or .parquet", str(p))


@contextmanager
def _read_errors(p: Path) -> Iterator[None]:
    """Turn a reader's exception into one :class:`DataError` line naming the file and the fix."""
    try:
        yield
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty; export the account table with a header row", str(p)) from None
    except UnicodeDecodeError:
        raise DataError(f"is not UTF-8 text{_where_not_utf8(p)}; save it as UTF-8 "
                        "(in Excel: 'CSV UTF-8')", str(p)) from None
    except (pd.errors.ParserError, OSError, ValueError) as err:
        if isinstance(err, pd.errors.ParserError):
            _raise_if_other_delimiter(p)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot be read ({first}); check that it is a valid file", str(p)) from None


_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _raise_if_other_delimiter(p: Path) -> None:
    """A file whose rows the comma reader could not split: when Python's ``csv.Sniffer``
    finds another delimiter in its first lines (a semicolon file whose values hold commas),
    say so in one line instead of the tokenizer's message."""
    import csv

    try:
        with open(p, encoding="utf-8", errors="replace", newline="") as fh:
            sample = fh.read(64_000)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except (OSError, csv.Error):
        return
    name = _DELIMITERS.get(dialect.delimiter)
    if name:
        raise DataError(f"the file is {name}-separated; export it comma-separated (CSV)", str(p))


def _check_delimiter(df: pd.DataFrame, p: Path) -> None:
    if df.shape[1] == 1:
        header = str(df.columns[0])
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in header:
                raise DataError(f"the header is a single column containing {name}s: the file is "
                                f"{name}-separated; export it comma-separated (CSV)", str(p))


def _check_header(p: Path) -> None:
    """Raise when the CSV header repeats a name (pandas would rename the copy "Industry.1").

    The header row is read as data (``header=None``), with the reader's own encoding,
    compression and quoting, so the names are exactly as written.
    """
    row = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False)
    names = [str(v) for v in row.iloc[0].tolist()] if len(row) else []
    seen: set[str] = set()
    dup = sorted({n for n in names if n and (n in seen or seen.add(n))})
    if dup:
        raise DataError(f"duplicate column name(s) {', '.join(dup)}; make the header unique", str(p))


#: Only a blank cell is missing: "NA" (North America) and "None" (an ERP value) are values as
#: written, as they are for DuckDB and SQL. In number and yes/no columns,
#: :data:`icpml.schema.NULL_TOKENS` ("NA", "N/A", "null", "-", ...) read as missing.
CSV_MISSING = {"keep_default_na": False, "na_values": [""]}


def _text_dtype(text: bool | Collection[str], names: Collection[str],
               kind: type = str) -> type | dict | None:
    """``dtype`` for ``read_csv``: every column as text, or the named ones present.

    ``kind`` ``object`` keeps the reader's Python strings as they are (Pandas' ``str``
    conversion costs more than the read itself; streaming scoring does not need it).
    """
    if text is True:
        return kind
    if not text:
        return None
    return {c: kind for c in names if c in set(text)} or None


def load_accounts(path: str | os.PathLike[str], *, text: bool | Collection[str] = False) -> pd.DataFrame:
    """Read an account table from CSV or Parquet.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (optionally compressed) or ``.parquet`` / ``.pq``.
    text : bool or collection of str, default False
        CSV only: read every column (True) or these columns as text exactly as written
        (blank cells missing), for :func:`icpml.schema.coerce` to type them; an id such as
        "0000100234" stays that text. Parquet columns keep their stored types.

    Returns
    -------
    pandas.DataFrame
        One row per account, the file's columns in file order.

    Raises
    ------
    DataError
        If the file is missing, unreadable, of an unknown format, or (CSV) its header
        repeats a column name.
    """
    p, parquet = _table_path(path)
    with _read_errors(p):
        if parquet:
            df = pd.read_parquet(p)
        else:
            _check_header(p)
            names = list(pd.read_csv(p, nrows=0).columns) if text and text is not True else []
            df = pd.read_csv(p, low_memory=False, dtype=_text_dtype(text, names), **CSV_MISSING)
    if not parquet:
        _check_delimiter(df, p)
    log.debug("loaded %d rows x %d columns from %s", len(df), df.shape[1], p)
    return df


def iter_accounts(path: str | os.PathLike[str], rows: int,
                  columns: Collection[str] | None = None, *,
                  text: bool | Collection[str] = False) -> Iterator[pd.DataFrame]:
    """Read an account table ``rows`` at a time, so memory stays flat whatever its size.

    Same formats, errors and ``text`` as :func:`load_accounts`. Scoring reads the id
    and the columns whose reading the model's schema fixes as text
    (:attr:`icpml.scoring.Scorer.text_columns`), so no chunk guesses a type of its own.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (optionally compressed) or ``.parquet`` / ``.pq``.
    rows : int
        Rows per chunk.
    columns : collection of str, optional
        Read only those of these columns the file has (scoring reads the id and
        the model's columns, not a prospect list's every other field).
    text : bool or collection of str, default False
        As in :func:`load_accounts`.

    Yields
    ------
    pandas.DataFrame
        Chunks of at most ``rows`` rows, in file order. An empty CSV yields
        nothing after its header; a Parquet file with no rows yields one empty
        frame.

    Raises
    ------
    DataError
        As :func:`load_accounts`.
    """
    p, parquet = _table_path(path)
    wanted = None if columns is None else set(columns)
    with _read_errors(p):
        if parquet:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(p)
            if wanted is not None:
                _raise_near_duplicates(pf.schema_arrow.names, wanted, p)
            names = None if wanted is None else [c for c in pf.schema_arrow.names if c in wanted]
            if pf.metadata.num_rows == 0:
                empty = pf.schema_arrow.empty_table()
                yield (empty if names is None else empty.select(names)).to_pandas()
                return
            for batch in pf.iter_batches(batch_size=rows, columns=names):
                yield batch.to_pandas()
            return
        _check_header(p)
        header = pd.read_csv(p, nrows=0)
        _check_delimiter(header, p)
        if wanted is not None:
            _raise_near_duplicates(header.columns, wanted, p)
        usecols = None if wanted is None else [c for c in header.columns if c in wanted]
        dtype = _text_dtype(text, header.columns, object)
        first = True
        with pd.read_csv(p, chunksize=rows, low_memory=False, usecols=usecols, dtype=dtype,
                         **CSV_MISSING) as reader:
            for chunk in reader:
                first = False
                yield chunk
        if first:  # a header and no rows: one empty table with those columns
            empty = header if usecols is None else header[usecols]
            yield empty.astype(str) if text is True else empty


def iter_query(sql: str, rows: int) -> Iterator[pd.DataFrame]:
    """Run a read-only DuckDB query (see :func:`load_query`) and yield its result ``rows`` at a time.

    Parameters
    ----------
    sql : str
        The query; never logged or written anywhere.
    rows : int
        Rows per chunk.

    Yields
    ------
    pandas.DataFrame
        Chunks of at most ``rows`` rows of the result.

    Raises
    ------
    DataError
        DuckDB is not installed, the statement returns no rows to score (not a
        SELECT), or the query fails (message redacted as in :func:`load_query`).
    """
    duckdb = _duckdb()
    con = duckdb.connect(":memory:")
    try:
        try:
            rel = con.sql(sql)
            if rel is None:
                raise DataError("the query returned no rows to score; write a SELECT", "query")
            # DuckDB 2 names it to_arrow_reader, 1.x record_batch
            reader = (rel.to_arrow_reader(rows) if hasattr(rel, "to_arrow_reader")
                      else rel.record_batch(rows))
        except duckdb.Error as err:
            raise _query_error(err) from None
        empty = True
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except duckdb.Error as err:
                raise _query_error(err) from None
            empty = False
            yield batch.to_pandas()
        if empty:
            yield reader.schema.empty_table().to_pandas()
    finally:
        con.close()


def _where_not_utf8(p: Path) -> str:
    """`` (column 'x', line 3)``: where the first byte that is not UTF-8 sits; best effort."""
    import csv

    if p.suffix.lower() not in (".csv", ".txt"):  # compressed: positions mean nothing
        return ""
    try:
        raw = p.read_bytes()
        raw.decode("utf-8")
        return ""
    except UnicodeDecodeError as err:
        start = err.start
    except OSError:
        return ""
    line = raw.count(b"\n", 0, start) + 1
    where = f"line {line}, byte 0x{raw[start]:02x}"
    begin = raw.rfind(b"\n", 0, start) + 1
    end = raw.find(b"\n", start)
    try:
        header = next(csv.reader([raw[:raw.find(b"\n")].decode("utf-8", "replace")]))
        fields = next(csv.reader([raw[begin:end if end >= 0 else len(raw)]
                                  .decode("utf-8", "replace")]))
    except (csv.Error, StopIteration):
        return f" ({where})"
    for i, field in enumerate(fields):
        if "\ufffd" in field and i < len(header):
            return f" (column '{_clip(header[i])}', {where})"
    return f" ({where})"


def _clip(v: object, n: int = 40) -> str:
    """A value short enough for a one-line message."""
    text = str(v)
    return text if len(text) <= n else text[:n] + "..."


def load_query(sql: str) -> pd.DataFrame:
    """Run a read-only DuckDB SQL query and return its result as the account table.

    DuckDB reads CSV, Parquet and JSON files (``SELECT * FROM 'crm/*.parquet'``),
    and through its extensions PostgreSQL, MySQL or S3; the query text is never
    logged or written anywhere, since it may hold a connection string.

    Parameters
    ----------
    sql : str
        The query, run on an in-memory DuckDB connection.

    Returns
    -------
    pandas.DataFrame
        The result, one row per account.

    Raises
    ------
    DataError
        DuckDB is not installed, or the query fails (the first line of DuckDB's
        message is kept, with any ``password=...`` redacted).
    """
    duckdb = _duckdb()
    try:
        con = duckdb.connect(":memory:")
        try:
            df = con.execute(sql).df()
        finally:
            con.close()
    except duckdb.Error as err:
        raise _query_error(err) from None
    log.debug("query returned %d rows x %d columns", len(df), df.shape[1])
    return df


def _duckdb():
    try:
        import duckdb
    except ImportError:
        # the command line asks for what this install lacks: a usage error (exit 2), not bad data
        raise ConfigError("--query needs DuckDB, which icpml does not install: "
                          "pip install duckdb") from None
    return duckdb


def _query_error(err: Exception) -> DataError:
    """DuckDB's first message line, with any secret redacted."""
    first = redact((str(err).strip().splitlines() or [type(err).__name__])[0])
    return DataError(f"the query failed ({first}); fix the SQL", "query")


def load_source(cfg: Config, path: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, str]:
    """The account table the config describes, and a label for messages.

    ``path`` (``--data`` on the command line) overrides ``data.path``. With
    ``data.adapter`` the named builder of :data:`icpml.adapters.ADAPTERS` reads the path
    (a folder or file) with ``data.options``; with ``data.opportunities`` the
    opportunities export is joined on as per-account outcomes
    (:func:`icpml.adapters.crm.crm_accounts`). CSV files are read as text exactly as
    written (:func:`load_accounts` with ``text=True``): :func:`icpml.schema.learn_schema`
    and :func:`icpml.schema.coerce` type them. No input file is modified.

    Parameters
    ----------
    cfg : Config
        The config; ``data.path``, ``data.adapter``, ``data.options`` and
        ``data.opportunities`` are read.
    path : str or path-like, optional
        Overrides ``data.path``.

    Returns
    -------
    tuple
        ``(accounts, source)``: the raw account table (not yet validated) and the
        path it came from, as text (``"<accounts> + <opportunities file>"`` with
        an opportunities export).

    Raises
    ------
    DataError
        No path is configured, the options do not fit the adapter, or a file is
        missing or unreadable.
    """
    d = cfg.data
    if path is None:
        if not d.path:
            raise DataError("no data: set data.path in the config or pass --data", "config")
        path = cfg.resolve(d.path)
    source = str(path)
    if d.adapter:
        from icpml.adapters import get_adapter

        try:
            df = get_adapter(d.adapter).build(path, **d.options)
        except TypeError as err:
            raise DataError(f"data.options do not fit adapter '{d.adapter}' ({err}); "
                            "see its docstring for the options it takes", "config") from None
    else:
        df = load_accounts(path, text=True)  # raw text: the schema decides how to read it
    if d.opportunities:
        from icpml.adapters.crm import crm_accounts

        opp_path = cfg.resolve(d.opportunities.path)
        df = crm_accounts(df, load_accounts(opp_path, text=True), d.opportunities,
                          id_column=cfg.columns.id, source=str(opp_path))
        source = f"{source} + {opp_path.name}"
    return df, source


def coerce_bool(s: pd.Series) -> pd.Series | None:
    """Booleans from bool, 0/1 or yes/no/true/false text; None when not boolean-like.

    Parameters
    ----------
    s : pandas.Series
        Any column. Not modified.

    Returns
    -------
    pandas.Series or None
        A nullable ``boolean`` Series, same index (missing values stay
        missing), or None when some value is not boolean-like.

    Examples
    --------
    >>> import pandas as pd
    >>> from icpml.data import coerce_bool
    >>> coerce_bool(pd.Series(["yes", "No", None])).tolist()
    [True, False, <NA>]
    """
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    if s.dropna().empty or _not_boolean(s):
        return None
    if pd.api.types.is_numeric_dtype(s):
        return s.map(lambda v: pd.NA if pd.isna(v) else bool(v)).astype("boolean")
    out = s.astype("string").str.strip().str.lower()
    return out.map(lambda v: pd.NA if pd.isna(v) else v in _TRUE).astype("boolean")


def _not_boolean(s: pd.Series) -> list:
    """The distinct non-missing values of ``s`` that :func:`coerce_bool` cannot read, in
    order of first appearance."""
    vals = pd.unique(s.dropna())
    if pd.api.types.is_numeric_dtype(s):
        return [v for v in vals if v not in (0, 1)]
    return [v for v in vals if str(v).strip().lower() not in _TRUE | _FALSE]


def feature_kinds(df: pd.DataFrame, cfg: Config) -> dict[str, str]:
    """Kind of each feature column: ``numeric``, ``boolean`` or ``categorical``.

    Columns listed in ``columns.categorical`` are categorical; otherwise the
    column's dtype decides (bool, numeric, anything else categorical).

    Parameters
    ----------
    df : pandas.DataFrame
        A validated account table (:func:`validate_accounts`).
    cfg : Config
        Supplies the feature columns.

    Returns
    -------
    dict of str to str
        Feature column -> kind, in config order.
    """
    kinds: dict[str, str] = {}
    forced = set(cfg.columns.categorical)
    for c in cfg.columns.feature_columns:
        s = df[c]
        if c in forced:
            kinds[c] = "categorical"
        elif pd.api.types.is_bool_dtype(s):
            kinds[c] = "boolean"
        elif pd.api.types.is_numeric_dtype(s):
            kinds[c] = "numeric"
        else:
            kinds[c] = "categorical"
    return kinds


def _coerce_numeric(s: pd.Series) -> tuple[pd.Series, float]:
    """Numeric version of ``s`` and the share of non-blank values that failed to parse.

    Read as :mod:`icpml.schema` reads a numeric column (:func:`icpml.schema.read_numbers`):
    blanks are missing, yes/no is 1/0, currency is dropped, the number format is detected
    from the column ("$1,234.50" -> 1234.5, "1.234,5" -> 1234.5; "1,5" among "2.25" stays
    unparsed rather than becoming 15).
    """
    num, bad = read_numbers(s)
    return pd.Series(num, index=s.index, name=s.name), bad


def spelling_key(value: str) -> str:
    """What two spellings of one category share: case, spacing and width ignored ("SaaS " ~ "saas").

    Parameters
    ----------
    value : str
        A category value.

    Returns
    -------
    str
        Unicode compatibility-normalised (NFKC: full-width "Ｓａｌｅｓｆｏｒｃｅ" is
        "Salesforce", a no-break space a space), whitespace runs collapsed to one space,
        trimmed, case-folded.

    Examples
    --------
    >>> from icpml.data import spelling_key
    >>> spelling_key(" SaaS  Cloud ")
    'saas cloud'
    >>> spelling_key("Ｓａｌｅｓｆｏｒｃｅ")
    'salesforce'
    """
    return " ".join(unicodedata.normalize("NFKC", str(value)).split()).casefold()


def normalize_categories(df: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Merge spellings of one category that differ only in case, spacing or width (NFKC).

    CRM exports type the same industry as "SaaS", "saas" and " SaaS"; left alone, each
    spelling is a category of its own, thinning the evidence and splitting criteria.
    Each group of spellings becomes its most frequent one (ties: the first in sort order),
    so the result is deterministic.

    Parameters
    ----------
    df : pandas.DataFrame
        Accounts. Not modified.
    columns : list of str
        Categorical columns to normalise (absent ones are skipped).

    Returns
    -------
    tuple
        ``(copy, warnings)``: the table with merged spellings, and one warning
        (str) per column changed.

    Examples
    --------
    >>> import pandas as pd
    >>> from icpml.data import normalize_categories
    >>> df = pd.DataFrame({"industry": ["SaaS", "saas", "SaaS ", "Retail"]})
    >>> normalize_categories(df, ["industry"])[0]["industry"].tolist()
    ['SaaS', 'SaaS', 'SaaS', 'Retail']
    """
    out = df.copy()
    warnings: list[str] = []
    for c in columns:
        if c not in out.columns:
            continue
        mapping = canonical_spellings(out[c])
        changed = {v: t for v, t in mapping.items() if v != t}
        if not changed:
            continue
        out[c] = out[c].astype("string").map(mapping).astype("string")
        shown = ", ".join(f"{v!r} -> {t!r}" for v, t in list(changed.items())[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        warnings.append(f"'{c}': {len(changed)} spelling(s) differing only in case, spacing or width were "
                        f"merged ({shown}{more})")
    return out, warnings


def product_lines(values: pd.Series) -> pd.Series:
    """The product line of each row of a ``columns.product`` column (``string`` dtype, same
    index; blank cells are missing). ``values`` is not modified.

    Values are trimmed, and spellings that differ only in case are one product line, written
    as its most frequent spelling (ties: the first in sorted order): ``"Core"``, ``"core "``
    and ``"CORE"`` are all ``"Core"`` when ``"Core"`` is the most common.
    """
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    counts = text.value_counts()
    canon: dict[str, str] = {}
    for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        canon.setdefault(str(v).casefold(), str(v))
    if len(canon) == len(counts):
        return text
    return text.map(lambda v: canon[v.casefold()] if isinstance(v, str) else v).astype("string")


def _product_line_problems(df: pd.DataFrame, id_col: str, product_col: str) -> list[str]:
    """Problems of a table with one row per customer and product line (``columns.product``):
    blank product cells, fewer than 2 or more than ``MAX_PRODUCT_LINES`` product lines, a
    repeated (id, product) pair. Each problem is one clause naming the column and the fix."""
    from icpml.config import MAX_PRODUCT_LINES

    problems = []
    prod = product_lines(df[product_col])
    n_blank = int(prod.isna().sum())
    if n_blank:
        problems.append(f"product column '{product_col}' has {n_blank} empty value(s); every row "
                        "needs its product line")
    lines = prod.dropna().unique()
    if len(lines) < 2:
        seen = f"only {_clip(lines[0])!r}" if len(lines) else "no value"
        problems.append(f"product column '{product_col}' has {seen}; it needs at least 2 product "
                        "lines (or remove columns.product for one ICP)")
    elif len(lines) > MAX_PRODUCT_LINES:
        problems.append(f"product column '{product_col}' has {len(lines)} distinct values (at most "
                        f"{MAX_PRODUCT_LINES}); it looks like an identifier: name the product-line "
                        "column in columns.product")
    pair = pd.DataFrame({"id": df[id_col].astype("string"), "product": prod})
    dup = pair[pair.duplicated(keep=False) & pair["id"].notna() & pair["product"].notna()]
    if len(dup):
        first = dup.iloc[0]
        n = len(dup.drop_duplicates())
        problems.append(f"id column '{id_col}' repeats within a product line: {n} (id, "
                        f"{product_col}) pair(s) occur more than once (e.g. {_clip(first['id'])!r} "
                        f"with {_clip(first['product'])!r}); keep one row per customer and product")
    return problems


def _raise_near_duplicates(names: Collection[object], wanted: Collection[str], p: Path) -> None:
    """A :class:`DataError` when a column scoring reads is repeated up to case or spacing."""
    problems = _near_duplicate_columns(names, list(wanted))
    if problems:
        raise DataError(problems, str(p))


def _near_duplicate_columns(names: Collection[object], used: Collection[str]) -> list[str]:
    """One problem per column the config uses whose name another column repeats up to case
    and spacing ("Industry" and "industry " or " INDUSTRY"): a CRM export with a standard and
    an enrichment field of one label, where icpml would otherwise pick one silently."""
    by_key: dict[str, list[str]] = {}
    for n in dict.fromkeys(str(c) for c in names):
        by_key.setdefault(spelling_key(n), []).append(n)
    problems = []
    for c in dict.fromkeys(used):
        twins = [n for n in by_key.get(spelling_key(c), []) if n != c]
        if twins and c in set(map(str, names)):
            others = ", ".join(repr(n) for n in twins)
            problems.append(f"column {c!r} is repeated as {others} (names differ only in case or "
                            "spacing); rename or drop one so the header is unambiguous")
    return problems


def validate_accounts(df: pd.DataFrame, cfg: Config, *, source: str = "data",
                      require_outcomes: bool = True, schema: Schema | None = None) -> pd.DataFrame:
    """Check ``df`` against the config and return a typed copy.

    Values are read by :func:`icpml.schema.coerce` with ``schema`` (learned from ``df``
    by :func:`icpml.schema.learn_schema` when not given), the same reading scoring uses.

    Parameters
    ----------
    df : DataFrame
        The raw account table. It is not modified.
    cfg : Config
        Gives the column roles.
    source : str
        Name used in error messages (usually the file path).
    require_outcomes : bool
        False when scoring prospects, which have no outcomes yet.
    schema : Schema, optional
        How to read each column (default: learned from ``df``).

    Returns
    -------
    DataFrame
        A copy with the id as string (exactly as written), boolean features as
        ``boolean``, numeric-looking feature text parsed to numbers, categorical features
        as ``string`` in their canonical spelling, post-sale columns typed likewise,
        outcomes as float and churn as ``boolean``.

    Raises
    ------
    DataError
        Listing every problem found.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError("expected a pandas DataFrame of accounts", source)
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError("the table is empty; it needs one row per account", source)
    cols = cfg.columns
    problems = _column_problems(df, cfg, require_outcomes)
    out = df.copy()
    if cols.id in df.columns:
        product_lines = bool(cols.product and cols.product in df.columns and require_outcomes)
        problems += _id_problems(df[cols.id], cols.id, unique=not product_lines)
        if product_lines:  # one row per customer and product line: the pair is the key
            problems += _product_line_problems(df, cols.id, cols.product)
        out[cols.id] = df[cols.id].astype("string")

    base = df.loc[:, ~df.columns.duplicated()]  # a repeated name is reported above
    typed, found = _read_cells(base, cfg, schema)
    problems += _type_features(base, typed, found, cfg, out)
    if cols.date and cols.date in df.columns:
        out[cols.date], bad_dates = _parse_dates(df[cols.date], cols.date)
        problems += bad_dates
    elif cols.date and require_outcomes:
        problems.append(f"missing date column '{cols.date}'; add it or remove columns.date")
    if require_outcomes:
        problems += _type_outcomes(base, typed, found, cfg, out)
        if cols.churn and cols.churn in df.columns:
            problems += _type_churn(df[cols.churn], cols.churn, out)
        problems += _size_problems(len(df), cfg)
    if problems:
        raise DataError(problems, source)
    return out


def _column_problems(df: pd.DataFrame, cfg: Config, require_outcomes: bool) -> list[str]:
    """Columns the config names but the table lacks (with close spellings), and repeated
    header names."""
    cols = cfg.columns
    problems = []
    needed = [cols.id, *cols.feature_columns]
    if require_outcomes:
        needed += [m.column for m in cols.outcomes]
        if cols.churn:
            needed.append(cols.churn)
        if cols.product:
            needed.append(cols.product)
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        close = _close_matches(missing, list(df.columns))
        problems.append(f"missing column(s) {', '.join(repr(c) for c in missing)}{close}; "
                        "rename them in the data or fix columns.* in the config")
    if len(set(df.columns)) != df.shape[1]:
        dup = sorted({str(c) for c in df.columns if list(df.columns).count(c) > 1})
        problems.append(f"duplicate column name(s) {', '.join(dup)}; make the header unique")
    problems += _near_duplicate_columns(df.columns, [*needed, *cols.post_sale])
    return problems


def _id_problems(ids: pd.Series, name: str, *, unique: bool = True) -> list[str]:
    """Empty account ids, and duplicated ones when ``unique`` (one row per account)."""
    problems = []
    n_missing = int(ids.isna().sum())
    if n_missing:
        problems.append(f"id column '{name}' has {n_missing} empty value(s); every account needs an id")
    dup = ids[ids.duplicated(keep=False) & ids.notna()]
    if unique and len(dup):
        examples = ", ".join(_clip(v) for v in pd.unique(dup)[:3])
        problems.append(
            f"id column '{name}' has {dup.nunique()} duplicated id(s) (e.g. {examples}); "
            "keep one row per account"
        )
    return problems


def _read_cells(base: pd.DataFrame, cfg: Config, schema: Schema | None):
    """Every cell read by the schema (learned here when not given; columns it does not
    know, e.g. outcomes, learned too): the typed frame and its issues by (column, kind)."""
    cols = cfg.columns
    if schema is None:
        schema = learn_schema(base, cfg)
    else:
        roles = [*cols.feature_columns, *cols.post_sale, *(m.column for m in cols.outcomes)]
        extra = learn_schema(base, cfg, columns=[c for c in roles if c not in schema.columns])
        schema = Schema({**schema.columns, **extra.columns}, schema.warnings)
    typed, cell_issues = coerce(base, schema)
    return typed, {(i.column, i.kind): i for i in cell_issues}


def _type_features(base: pd.DataFrame, typed: pd.DataFrame, found: dict, cfg: Config,
                   out: pd.DataFrame) -> list[str]:
    """Feature and post-sale columns typed into ``out``; empty, mixed or infinite features
    are problems (post-sale cells that cannot be read are simply unknown)."""
    cols = cfg.columns
    problems = []
    for c in dict.fromkeys([*cols.feature_columns, *cols.post_sale]):
        if c not in base.columns:
            continue
        if c in cols.post_sale:  # never a criterion: unreadable cells are simply unknown
            out[c] = typed[c]
            continue
        bad = found.get((c, "not a number")) or found.get((c, "not yes/no"))
        if base[c].isna().all() or (typed[c].isna().all() and bad is None):
            problems.append(f"feature column '{c}' is entirely empty; drop it from columns.features")
            continue
        if bad is not None:
            what = "numbers" if bad.kind == "not a number" else "yes/no values"
            problems.append(
                f"feature column '{c}' mixes {what} and text (e.g. {_examples(bad.values)}); "
                f"fix those values, or list '{c}' under columns.categorical"
            )
            continue
        if (c, "infinite") in found:
            problems.append(f"feature column '{c}' has {int(found[c, 'infinite'].rows.sum())} "
                            "infinite value(s); replace them with numbers or leave them blank")
        out[c] = typed[c]
    return problems


def _parse_dates(raw_dates: pd.Series, name: str) -> tuple[pd.Series, list[str]]:
    """The date column as UTC timestamps (ISO 8601 with or without a time) and the problem
    of its unreadable values, if any."""
    parsed = pd.to_datetime(raw_dates, errors="coerce", utc=True)
    if (parsed.isna() & raw_dates.notna()).any():  # ISO dates with and without a time
        iso = pd.to_datetime(raw_dates.astype("string"), errors="coerce", utc=True,
                             format="ISO8601")
        if iso.notna().sum() > parsed.notna().sum():
            parsed = iso
    unreadable = parsed.isna() & raw_dates.notna()
    if not unreadable.any():
        return parsed, []
    examples = ", ".join(repr(_clip(v, 20)) for v in pd.unique(raw_dates[unreadable])[:3])
    return parsed, [f"date column '{name}' has {int(unreadable.sum())} unreadable "
                    f"date(s) (e.g. {examples}); write every date as YYYY-MM-DD"]


def _type_outcomes(base: pd.DataFrame, typed: pd.DataFrame, found: dict, cfg: Config,
                   out: pd.DataFrame) -> list[str]:
    """Outcome columns as floats into ``out``; non-numeric, empty, constant or infinite
    outcomes are problems."""
    problems = []
    for m in cfg.columns.outcomes:
        if m.column not in base.columns:
            continue
        num = typed[m.column].astype("Float64").astype(float)
        if (m.column, "not a number") in found or (m.column, "not yes/no") in found:
            bad = found.get((m.column, "not a number")) or found[m.column, "not yes/no"]
            problems.append(
                f"outcome column '{m.column}' has non-numeric values "
                f"(e.g. {_examples(bad.values)}); "
                "it must hold numbers (ARR, NRR, NPS...) or yes/no"
            )
        elif num.isna().all():
            problems.append(f"outcome column '{m.column}' is entirely empty; fill it in the "
                            "export or remove it from columns.outcomes")
        elif num.nunique() < 2 and (m.column, "infinite") not in found:
            # (with infinite values the finite ones alone may agree: the infinite ones are the problem)
            problems.append(
                f"outcome column '{m.column}' has the same value ({_clip(num.dropna().iloc[0])}) "
                "for every account, so it cannot rank customers; fix the export or remove it "
                "from columns.outcomes"
            )
        if (m.column, "infinite") in found:
            problems.append(f"outcome column '{m.column}' has "
                            f"{int(found[m.column, 'infinite'].rows.sum())} infinite value(s); "
                            "replace them with numbers or leave them blank")
        out[m.column] = num
    return problems


def _type_churn(raw: pd.Series, name: str, out: pd.DataFrame) -> list[str]:
    """The churn column as ``boolean`` into ``out``; unreadable, empty or single-valued
    churn is a problem."""
    b = coerce_bool(raw)
    if b is None:
        bad = _not_boolean(raw)
        vals = ", ".join(repr(_clip(v)) for v in bad[:4])
        return [f"churn column '{name}' must be yes/no, true/false or 0/1; "
                f"{len(bad)} other value(s) found (e.g. {vals}): recode each account as churned or not"]
    out[name] = b
    if b.isna().any():
        return [f"churn column '{name}' has {int(b.isna().sum())} empty value(s); fill them"]
    if b.nunique() < 2:
        return [f"churn column '{name}' has a single value ({_clip(b.dropna().iloc[0])} for "
                "every account); a churn model needs both churned and retained accounts: "
                "fix the export, or remove columns.churn to run without a churn model"]
    return []


def _size_problems(n: int, cfg: Config) -> list[str]:
    """Too few accounts for ``cohorts.min_per_cohort`` in each cohort."""
    q = min(cfg.cohorts.best_quantile, cfg.cohorts.worst_quantile)
    need = int(np.ceil(cfg.cohorts.min_per_cohort / q))
    if n >= need:
        return []
    return [f"{n} accounts give fewer than {cfg.cohorts.min_per_cohort} per cohort at quantile {q}; "
            f"provide at least {need} accounts or lower cohorts.min_per_cohort"]


def _examples(values: pd.Series) -> str:
    """Up to three distinct raw values, quoted, for a one-line message."""
    return ", ".join(repr(_clip(str(v).strip(), 20)) for v in pd.unique(values.to_numpy(dtype=object))[:3])


def _close_matches(missing: list[str], present: list[str]) -> str:
    import difflib

    hints = []
    for m in missing:
        near = difflib.get_close_matches(str(m), [str(p) for p in present], n=1, cutoff=0.75)
        if near:
            hints.append(f"'{m}' -> '{near[0]}'?")
    return f" (did you mean {', '.join(hints)})" if hints else ""


def data_fingerprint(df: pd.DataFrame) -> str:
    """A short, order-sensitive hash of a table's content, logged with each run.

    Parameters
    ----------
    df : pandas.DataFrame
        Any table. Not modified.

    Returns
    -------
    str
        16 hex digits of the SHA-256 of the column names and
        ``pandas.util.hash_pandas_object`` of the rows.
    """
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()[:16]
