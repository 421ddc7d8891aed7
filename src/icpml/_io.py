"""Atomic file output: a reader never sees a half-written file.

Every file icpml writes goes to a temporary file in the target folder first and
is renamed into place (``os.replace`` is atomic on POSIX and Windows), so an
interrupted run leaves the previous output intact, never a truncated one. The temporary
file's name carries the writer's pid; the next write of the same file removes temporary
files whose writer is gone (a ``kill -9`` leaves one behind). A
write that fails for lack of space or permission raises
:class:`~icpml.errors.OutputError` (one line, exit code 5) and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar

import pandas as pd

from icpml.errors import ConfigError, output_error

__all__ = ["atomic_write_text", "atomic_write_bytes", "write_table", "write_table_stream", "prefetch",
           "neutralise_formulas"]

T = TypeVar("T")


def _temp_prefix(p: Path) -> str:
    """``.<name>.<pid>.``: the writer's pid in its temporary file's name, so that a later
    write of the same file can tell a temporary file left by a killed writer (kill -9, OOM,
    power loss) from one still being written, and remove it (:func:`_sweep_stale`)."""
    return f".{p.name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's live process, or cannot tell: keep its file
    return True


def _sweep_stale(p: Path) -> None:
    """Remove ``p``'s temporary files left by writers that are gone (best effort)."""
    try:
        candidates = list(p.parent.glob(f".{glob.escape(p.name)}.*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        middle = tmp.name[len(p.name) + 2:-len(".tmp")]
        pid = middle.split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read without changing it where the OS tells it: Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (at import, before any thread writes)
    os.umask(mask)
    return mask


_UMASK = _umask()


def _publish_mode(tmp: str | os.PathLike[str], p: Path) -> None:
    """Give the temporary file the mode the output should have before it is renamed into place.

    ``mkstemp`` creates it readable by its owner only (0600), so every scored CSV and exported
    filter came out unreadable for the team's group, unlike a file written with ``open``:
    an existing output keeps its mode, a new one gets ``0666`` less the umask (0644 usually).
    """
    try:
        mode = p.stat().st_mode & 0o777 if p.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
    except OSError:
        pass  # a filesystem without modes (some network mounts): keep what it gave


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent folders)."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(p)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=_temp_prefix(p), suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _publish_mode(tmp, p)
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


# ----------------------------------------------------------------------------- CSV injection
#: A spreadsheet reads a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# also seen to trigger or to survive a clean-up: the same characters after leading spaces or
# a line break (" =1+1"; some spreadsheets trim before evaluating) and their full-width forms
# ("＝1+1", which East Asian input methods type and spreadsheets may normalise)
_FULLWIDTH = ("\uff1d", "\uff0b", "\uff0d", "\uff20")
_FIRST_CHARS = (*FORMULA_START, *_FULLWIDTH, " ", "\n", "\u00a0", "\u3000")
_FORMULA_START_RE = r"[\s\u00a0\u3000]*[=+\-@\t\r\uff1d\uff0b\uff0d\uff20]"
# a plain number written as text ("-12", "+3.5", "-1,234.5", "1e-3"): a spreadsheet reads it as
# that number, never as a formula, so it is left as it is
_PLAIN_NUMBER_RE = r"[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?"


def _starts_like_formula(s: pd.Series) -> pd.Series | None:
    """Boolean mask of the text cells starting with a formula character; None when no cell does.

    Arrow-backed text (pandas' ``str`` dtype) is checked by its first character in pyarrow
    (about 30 ns a cell: scoring a million rows pays a small fraction of a second for it).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(s, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):  # object column of mixed types
        arr = None
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        starts = pa.array(list(_FIRST_CHARS), type=arr.type)
        hit = pc.fill_null(pc.is_in(pc.utf8_slice_codeunits(arr, 0, 1), value_set=starts), False)
        if not pc.any(hit).as_py():
            return None
        hit = pd.Series(hit.to_numpy(zero_copy_only=False), index=s.index)
        hit[hit] = s[hit].str.match(_FORMULA_START_RE, na=False).fillna(False).astype(bool)
        return hit if hit.any() else None
    if arr is not None and not pa.types.is_null(arr.type):
        return None  # not text (numbers, booleans, lists stored as objects)
    try:
        risky = s.str.match(_FORMULA_START_RE, na=False)
    except AttributeError:  # an object column without text: nothing to do
        return None
    risky = risky.fillna(False).astype(bool)
    return risky if risky.any() else None


def _neutralise(s: pd.Series) -> pd.Series | None:
    """``s`` with formula-like text cells prefixed by ``'``; None when nothing needs it."""
    risky = _starts_like_formula(s)
    if risky is None:
        return None
    text = s[risky]
    risky[risky] = ~text.str.strip().str.fullmatch(_PLAIN_NUMBER_RE, na=False).fillna(False).astype(bool)
    if not risky.any():
        return None
    return s.mask(risky, "'" + s[risky].astype(str)) if s.dtype == object else s.mask(risky, "'" + s)


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell (and column name) that a spreadsheet would run as a formula
    neutralised, following OWASP's CSV-injection advice: a cell starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return (also after leading spaces or a line break, and
    in their full-width forms ``＝ ＋ － ＠``) gets a leading ``'`` (Excel and Sheets then show
    the text as typed and hide the quote).

    Only text columns are touched: numbers (a genuine ``-3.5`` in a numeric column) and a text
    cell that is itself a plain number (``"-12"``) stay as they are. Returns ``df`` itself when
    nothing needs neutralising, else a copy (the input is never modified).
    """
    out = df
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            continue
        fixed = _neutralise(s)
        if fixed is not None:
            if out is df:
                out = df.copy()
            out.isetitem(i, fixed)
    names = pd.Series([str(c) for c in df.columns], dtype=object)
    fixed_names = _neutralise(names)
    if fixed_names is not None:
        out = out.copy() if out is df else out
        out.columns = fixed_names.tolist()
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], *, excel_safe: bool = True) -> Path:
    """Write a table as CSV or Parquet (by suffix), atomically.

    A CSV is written spreadsheet-safe unless ``excel_safe`` is false (see :func:`neutralise_formulas`);
    Parquet keeps every value exactly.

    Raises
    ------
    ConfigError
        For an unknown suffix (the fix: use .csv or .parquet).
    OutputError
        When the file cannot be written (disk full, no permission).
    """
    write_table_stream([df], path, excel_safe=excel_safe)
    return Path(path).expanduser()


def table_suffix(path: str | os.PathLike[str]) -> str:
    """``.csv`` or ``.parquet``; a :class:`ConfigError` naming the fix otherwise."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ConfigError(f"output '{p.name}' must end in .csv or .parquet")
    return ".csv" if suffix == ".csv" else ".parquet"


def write_table_stream(frames: Iterable[pd.DataFrame], path: str | os.PathLike[str], *,
                       excel_safe: bool = True) -> int:
    """Write a stream of same-shaped tables as one CSV or Parquet file, atomically.

    Each frame is appended as it arrives (memory stays that of one frame); the
    file appears under its name only once the stream has ended. Returns the rows written.
    A CSV's formula-like text cells are neutralised unless ``excel_safe`` is false
    (see :func:`neutralise_formulas`); Parquet keeps every value exactly.
    """
    p = Path(path).expanduser()
    suffix = table_suffix(p)
    tmp = None
    rows = 0
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(p)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=_temp_prefix(p), suffix=".tmp")
        os.close(fd)
        if suffix == ".csv":
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                for i, df in enumerate(frames):
                    (neutralise_formulas(df) if excel_safe else df).to_csv(fh, index=False,
                                                                           header=i == 0)
                    rows += len(df)
        else:
            rows = _write_parquet(frames, tmp)
        _publish_mode(tmp, p)
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


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, ``depth`` items ahead of the consumer.

    Used to overlap the stages of a stream (read, score, write): each holds the GIL only
    part of the time (pyarrow and the compiled trees release it), so on two cores the
    stages run side by side. The items and their order are those of ``items``; an
    exception raised by ``items`` is raised here, in the consumer, when its turn comes.
    When the consumer stops early (an error, ``close()``, Ctrl-C), the producer stops at
    its next item.
    """
    queue: Queue = Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as err:  # handed to the consumer, raised there
            put((done, err))
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()

    worker = threading.Thread(target=produce, name="icpml-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, err = queue.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def safe_name(name: str) -> str:
    """``name`` usable as a file name: letters, digits, ``-`` and ``_`` kept, others ``_``; at
    most 60 characters."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60]


def folder_name(config_name: str, run_id: str | None) -> str:
    """A report folder's name, ``<config name>_<run id[:8]>`` (``_local`` when untracked);
    the MLflow run carries the same name, so a run and its report are found by one name."""
    return f"{safe_name(config_name)}_{run_id[:8] if run_id else 'local'}"


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike[str], *, merge: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``dest`` to write into; put in place only if the block ends.

    Nothing is half-written: the files are written into the yielded folder, and only when
    the ``with`` block finishes without an exception does it become ``dest``:

    * a new ``dest``: the folder is renamed into place whole;
    * an existing ``dest`` (``merge=False``): swapped for the new folder (the old one is
      moved aside, the new one renamed in, the old one removed);
    * an existing ``dest`` (``merge=True``): each new file replaces its namesake with an
      atomic rename; other files there are left alone.

    On an exception the temporary folder is removed and the exception propagates.

    Parameters
    ----------
    dest : str or path-like
        The destination folder (its parents are created).
    merge : bool, default False
        Merge into an existing ``dest`` instead of replacing it.

    Yields
    ------
    pathlib.Path
        The temporary folder (``.<name>.<random>`` beside ``dest``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if not dest.exists():
            os.replace(tmp, dest)
        elif merge:
            for f in sorted(q for q in tmp.rglob("*") if q.is_file()):
                target = dest / f.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
        else:
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
