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
from pathlib import Path

import pandas as pd

from icpml.errors import ConfigError, output_error

__all__ = ["atomic_write_text", "atomic_write_bytes", "write_table"]


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
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"output '{p.name}' must end in .csv or .parquet")
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        os.close(fd)
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, p)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise output_error(p, err) from None
        raise
    return p
