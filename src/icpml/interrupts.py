"""Interruptions (SIGTERM) deferred while the tracking store is written.

The command line turns SIGTERM into an exception raised wherever Python happens to be
(:func:`icpml.cli.main`), so that every ``finally`` runs. Inside a store write that is
the wrong place: raised within SQLAlchemy's commit it leaves the SQLite connection
locked, the clean-up that follows fails with "database is locked" (reported as a
tracking error, exit 5, with library tracebacks), and raised within a weakref callback
it is swallowed ("Exception ignored in ...") and the run goes on to register a version.
Within :func:`deferred` the handler only records the interruption (:func:`request`);
:func:`checkpoint`, called between writes, raises it there, where the caller's undo
(:func:`icpml.tracking.log_discovery`) can run on a healthy connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_depth = 0
_pending: BaseException | None = None


def request(exc: BaseException) -> None:
    """Interrupt with ``exc``: raised now, or at the next :func:`checkpoint` inside
    :func:`deferred` (main thread only; signal handlers run there).

    Parameters
    ----------
    exc : BaseException
        The interruption (the command line's ``Interrupted``, a ``KeyboardInterrupt``).

    Raises
    ------
    BaseException
        ``exc``, outside a deferred block.
    """
    global _pending
    if _depth and threading.current_thread() is threading.main_thread():
        _pending = exc
        return
    raise exc


def pending() -> bool:
    """Whether an interruption waits for the next :func:`checkpoint`.

    Returns
    -------
    bool
        True when :func:`request` was called inside a deferred block and not yet raised.
    """
    return _pending is not None


def checkpoint() -> None:
    """Raise the interruption requested inside :func:`deferred`, if any.

    Raises
    ------
    BaseException
        The deferred interruption (then no longer pending).
    """
    global _pending
    if _pending is not None:
        exc, _pending = _pending, None
        raise exc


@contextlib.contextmanager
def deferred(*, check: bool = True) -> Iterator[None]:
    """Defer interruptions inside the block (blocks nest).

    Parameters
    ----------
    check : bool, default True
        Raise a deferred interruption when the outermost block ends normally; with False
        it waits for the next :func:`checkpoint`.

    Yields
    ------
    None
        Inside the block, :func:`request` records instead of raising.
    """
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if check and not _depth:
        checkpoint()
