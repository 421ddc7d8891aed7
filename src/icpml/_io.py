"""Atomic file output: a reader never sees a half-written file.

Every file icpml writes goes to a temporary file in the target folder first and
is renamed into place (``os.replace`` is atomic on POSIX and Windows), so an
interrupted run leaves the previous output intact, never a truncated one. A
write that fails for lack of space or permission raises
:class:`~icpml.errors.OutputError` (one line, exit code 5) and leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from icpml.errors import ConfigError, output_error

__all__ = ["atomic_write_text", "atomic_write_bytes", "write_table", "write_table_stream"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent folders)."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise output_error(p, err) from None
        raise
    return p


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a table as CSV or Parquet (by suffix), atomically.

    Raises
    ------
    ConfigError
        For an unknown suffix (the fix: use .csv or .parquet).
    OutputError
        When the file cannot be written (disk full, no permission).
    """
    write_table_stream([df], path)
    return Path(path).expanduser()


def table_suffix(path: str | os.PathLike[str]) -> str:
    """``.csv`` or ``.parquet``; a :class:`ConfigError` naming the fix otherwise."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"output '{p.name}' must end in .csv or .parquet")
    return ".csv" if suffix == ".csv" else ".parquet"


def write_table_stream(frames: Iterable[pd.DataFrame], path: str | os.PathLike[str]) -> int:
    """Write a stream of same-shaped tables as one CSV or Parquet file, atomically.

    Each frame is appended as it arrives (memory stays that of one frame); the
    file appears under its name only once the stream has ended. Returns the rows written.
    """
    p = Path(path).expanduser()
    suffix = table_suffix(p)
    tmp = None
    rows = 0
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.close(fd)
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                for i, df in enumerate(frames):
                    df.to_csv(fh, index=False, header=i == 0)
                    rows += len(df)
        else:
            rows = _write_parquet(frames, tmp)
        os.replace(tmp, p)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise output_error(p, err) from None
        raise
    return rows


def _write_parquet(frames: Iterable[pd.DataFrame], tmp: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    schema = None
    rows = 0
    try:
        for df in frames:
            table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(table)
            rows += len(df)
        if writer is None:  # nothing at all: an empty file with no columns
            pq.write_table(pa.table({}), tmp)
    finally:
        if writer is not None:
            writer.close()
    return rows
