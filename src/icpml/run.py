"""The edge: one discovery, then its record (MLflow run, registered models, report).

:func:`icpml.pipeline.discover` is pure; this module is where a discovery touches the
outside world, in one order: check the outputs can be written (tracking store, report
folder), discover, log the run and register the models (:mod:`icpml.tracking`), write
the report (:mod:`icpml.report`) inside the run. ``icpml discover``, ``icpml demo``,
retraining and per-product runs all call :func:`run_discovery` or
:func:`record_discovery`.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from icpml.config import Config
from icpml.errors import OutputError, TrackingError, redact
from icpml.pipeline import N_STAGES, Discovery, discover

__all__ = ["DiscoveryRun", "run_discovery", "record_discovery", "preflight"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscoveryRun:
    """A discovery and where it was recorded.

    Parameters
    ----------
    discovery : Discovery
        The pure result (frozen).
    run_id : str or None
        The MLflow run; None when untracked.
    report_dir : pathlib.Path or None
        The report folder; None when no report was written.
    model_versions : dict of str to str
        ``{"fit": "models:/<name>/<version>", "churn": ...}`` when tracked; empty otherwise.
    model_aliases : dict of str to str
        The alias each model got (``"champion"`` / ``"challenger"``), when tracked.
    timings : dict of str to float
        Seconds per stage, the discovery's and the recording's.
    """

    discovery: Discovery
    run_id: str | None = None
    report_dir: Path | None = None
    model_versions: dict[str, str] = field(default_factory=dict)
    model_aliases: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def preflight(cfg: Config, *, track: bool, report: bool) -> None:
    """Fail in seconds, not after training, when the run's outputs cannot be written.

    With ``track`` the tracking store must be reachable, and what a killed run left
    (orphan runs, half-done promotions) is repaired first (:func:`icpml.tracking.recover`).
    With ``report`` the report folder (or its nearest existing parent) must be writable.

    Parameters
    ----------
    cfg : Config
        The run's config (``tracking``, ``report.dir``, project root).
    track : bool
        Whether the run will log to the tracking store and register models.
    report : bool
        Whether the run will write a report folder.

    Raises
    ------
    TrackingError
        With ``track``: the tracking store is unreachable.
    OutputError
        With ``report``: the report folder, or its nearest existing parent, is a
        directory that cannot be written.
    """
    if track:
        from icpml import tracking

        db = tracking.local_store(cfg)
        if db is not None and not db.is_file():
            # a new local store is created when the run is recorded: a discovery that fails
            # on its data leaves no empty store (and no lock files) behind
            why = _unwritable(db.parent)
            if why is not None:
                raise TrackingError(
                    f"cannot create the tracking store '{redact(str(db))}' ({why}); set "
                    "tracking.uri or MLFLOW_TRACKING_URI to a store in a writable folder")
        else:
            tracking.configure(cfg)  # TrackingError when the store is unreachable
            tracking.recover(cfg, history=False)  # what a killed run left
    if report:
        folder = cfg.resolve(cfg.report.dir)
        why = _unwritable(folder)
        if why is not None:
            raise OutputError(f"cannot write reports to '{folder}' ({why}); "
                              "make it writable or set report.dir")


def _unwritable(folder: Path) -> str | None:
    """None when ``folder`` can be written, or created in its nearest existing parent;
    else why not, in words: ``permission denied [on '<parent>']``, or ``'<path>' is not a
    folder`` (a file where a folder would be made)."""
    existing = next((d for d in (folder, *folder.parents) if d.exists()), folder)
    if existing.exists() and not existing.is_dir():
        return f"'{redact(str(existing))}' is not a folder"
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        return "permission denied" + ("" if existing == folder else f" on '{existing}'")
    return None


def record_discovery(res: Discovery, *, track: bool = True, report: bool = True,
                     retrain: dict | None = None, extras: dict | None = None,
                     assign_champion: bool = True,
                     progress: Callable[[str, int, int], None] | None = None) -> DiscoveryRun:
    """Record a finished discovery: MLflow run and models (``track``), report (``report``).

    Parameters
    ----------
    res : Discovery
        Not changed.
    track, report : bool
        Log the run and register the models; write ``reports/<name>_<run>/``. With both,
        the report is written inside the run and logged as its artifacts.
    retrain : dict, optional
        Retraining's decision, shown in the report.
    extras : dict, optional
        More run artifacts, ``{path: text or JSON-ready dict}``.
    assign_champion : bool, default True
        See :func:`icpml.tracking.log_discovery`.
    progress : callable, optional
        ``progress(stage, done, total)`` for the one recording stage.

    Returns
    -------
    DiscoveryRun

    Raises
    ------
    TrackingError, OutputError
    """
    if not (track or report):
        return DiscoveryRun(res, timings=dict(res.timings))
    from icpml import report as report_mod

    name = "track + report" if track and report else "track" if track else "report"
    if progress:
        progress(name, N_STAGES, N_STAGES + 1)
    t0 = time.perf_counter()
    if track:
        from icpml import tracking

        writer = ((lambda run_id: report_mod.write_report(res, run_id=run_id, retrain=retrain))
                  if report else None)
        logged = tracking.log_discovery(res, write_report=writer, extras=extras,
                                        assign_champion=assign_champion)
        out = DiscoveryRun(res, logged.run_id, logged.report_dir, logged.model_versions,
                           logged.model_aliases)
    else:
        out = DiscoveryRun(res, report_dir=report_mod.write_report(res, retrain=retrain))
    dt = time.perf_counter() - t0
    log.info("stage=%s seconds=%.2f", name, dt)
    if progress:
        progress(name, N_STAGES + 1, N_STAGES + 1)
    return replace(out, timings={**res.timings, name: round(dt, 3)})


def run_discovery(cfg: Config, accounts: pd.DataFrame | None = None, *, track: bool = True,
                  report: bool = True, progress: Callable[[str, int, int], None] | None = None,
                  source: str | None = None) -> DiscoveryRun:
    """Check the outputs, discover, then record: what ``icpml discover`` runs.

    Parameters
    ----------
    cfg : Config
    accounts : DataFrame, optional
        Read from ``cfg.data.path`` when omitted. Not modified.
    track : bool, default True
        Log an MLflow run and register the models (the first tracked run of a model
        name makes its versions ``@champion``).
    report : bool, default True
        Write ``reports/<config name>_<run id[:8]>/``.
    progress : callable, optional
        ``progress(stage, done, total)`` over discovery's stages and the recording.
    source : str, optional
        Name of the data source for messages.

    Returns
    -------
    DiscoveryRun

    Raises
    ------
    DataError, ConfigError, TrackingError, OutputError
        ``TrackingError`` / ``OutputError`` before any model is trained when the tracking
        store or the report folder cannot be used.
    """
    from icpml.stability import fork_workers, release_workers

    # before MLflow starts its threads: workers fork from a one-thread process
    fork_workers(cfg, len(accounts) if isinstance(accounts, pd.DataFrame) else None)
    try:
        preflight(cfg, track=track, report=report)
    except BaseException:
        release_workers()
        raise
    # a new MLflow store's migrations leave classes behind; collected now, not in a random
    # later collection, whose weakref callbacks would swallow a SIGTERM arriving meanwhile
    gc.collect()
    total = N_STAGES + int(track or report)
    inner = (lambda stage, done, _total: progress(stage, done, total)) if progress else None
    res = discover(cfg, accounts, progress=inner, source=source)
    return record_discovery(res, track=track, report=report, progress=progress)
