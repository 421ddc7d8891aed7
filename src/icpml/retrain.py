"""Scheduled retraining: challenger vs champion, the promotion gate, criteria diff, drift.

``icpml retrain --config prod.yaml`` (cron, systemd, Airflow: no logic lives in
the scheduler) does, in order:

1. takes a lock (``mlruns/.retrain.lock``) so two retrains never overlap, and
   repairs what a killed run left (:func:`recover`: orphan runs marked FAILED,
   temporary report folders removed, a half-done promotion finished or rolled
   back, decisions missing from ``reports/promotions.json`` added);
2. loads and validates the fresh data; if the champion was trained on exactly
   this data with exactly this config *and* its promotion is complete (run
   FINISHED, every model it registered ``@champion``, decision recorded), stops:
   nothing to do (idempotent);
3. trains a challenger with :func:`icpml.pipeline.discover` (untracked yet);
4. evaluates the champion on the *same* held-out rows as the challenger (with
   ``columns.date`` set they are the newest accounts: an out-of-time test): fit
   ROC AUC and the ICP's lift with its bootstrap interval;
5. applies the gate (:class:`icpml.config.RetrainConfig`): the challenger's AUC
   may trail by at most ``max_auc_drop``; its ICP lift interval's lower bound by
   at most ``max_lift_drop``; it may not lose the champion's ICP (a challenger with no
   reliable ICP is never promoted over one that has criteria, even a champion that no
   longer holds: that is an alert), nor replace a stable champion ICP that still holds
   with a tentative one (every criterion below ``criteria.min_stability``);
6. computes what RevOps reads each quarter: the criteria diff (added, removed,
   changed thresholds old -> new, changed evidence) and drift (PSI per column
   against the champion's training profile; each champion criterion's coverage
   and lift now vs when learned);
7. logs the challenger as a run with new model versions aliased ``@challenger``,
   and promotes it to ``@champion`` when it passes, all models or none
   (:func:`icpml.tracking.promote`). Every decision is recorded
   as run tags and in ``reports/promotions.json``; ``reports/index.md`` always
   points at the champion's report.

Outcomes and exit codes: ``promoted`` and ``kept`` (challenger not good enough,
champion still holds) and ``unchanged`` exit 0; ``alert`` (4) when the challenger
fails the gate *and* the champion itself no longer holds on fresh data (AUC
below ``alert_auc`` or its ICP lift interval includes 1): a human should look.
``--dry-run`` does everything but log, register, promote or write.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from icpml.cohorts import BEST, MIDDLE, WORST
from icpml.config import Config
from icpml.criteria import CriteriaSet, Criterion, segment_evidence
from icpml.drift import criteria_drift, psi_table
from icpml.errors import ExitCode, IcpmlError

__all__ = ["retrain", "RetrainResult", "diff_criteria", "LockedError"]

log = logging.getLogger(__name__)


class LockedError(IcpmlError):
    """Another retrain holds the lock."""

    exit_code = ExitCode.LOCKED


@dataclass
class RetrainResult:
    """What one retrain decided and why.

    Parameters
    ----------
    decision : str
        ``promoted``, ``kept`` (the challenger failed the gate), ``alert`` (and the
        champion no longer holds on fresh data), ``unchanged`` (the champion was
        trained on this data and config), or ``dry-run: would be ...``.
    reasons : list of str
        Why, in words (the gate's findings).
    exit_code : int, default ExitCode.OK
        What the command exits with (:class:`~icpml.errors.ExitCode`; ``GATE``
        on an alert).
    champion_version, challenger_version : str, optional
        Registered fit model versions compared.
    comparison : dict
        ``challenger`` and (with a champion) ``champion`` figures on the same
        held-out rows: ``fit_roc_auc``, ``icp_lift``, ``icp_lift_ci``, ``icp_found``.
    diff : dict
        Criteria diff champion -> challenger (:func:`diff_criteria`).
    psi : pandas.DataFrame, optional
        Column drift since the champion's training (:func:`icpml.drift.psi_table`).
    criteria_drift : pandas.DataFrame, optional
        The champion's criteria on fresh data (:func:`icpml.drift.criteria_drift`).
    challenger : Discovery, optional
        The challenger's discovery.
    run : DiscoveryRun, optional
        Where the challenger was recorded (:func:`icpml.run.record_discovery`: run id,
        registered model versions, report folder); not set on a dry run or when nothing
        was trained.
    run_id : str, optional
        The challenger's MLflow run (not set on a dry run).
    """

    decision: str
    reasons: list[str]
    exit_code: int = ExitCode.OK
    champion_version: str | None = None
    challenger_version: str | None = None
    comparison: dict = field(default_factory=dict)
    diff: dict = field(default_factory=dict)
    psi: pd.DataFrame | None = None
    criteria_drift: pd.DataFrame | None = None
    #: the challenger's Discovery; ``run``: where it was recorded (not on a dry run)
    challenger: object | None = None
    run: object | None = None
    run_id: str | None = None


@contextmanager
def _lock(path: Path):
    """Hold ``path`` as an exclusive file lock (released by the OS if the process dies)."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise LockedError(f"another retrain holds {path}; wait for it to finish") from None
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------- diff
def _same_rule(a: Criterion, b: Criterion) -> bool:
    return a.kind == b.kind and a.column == b.column and a.op == b.op


def diff_criteria(old: CriteriaSet, new: CriteriaSet) -> dict:
    """Added, removed and changed criteria between two criteria sets.

    A criterion is *changed* when the same kind, column and operator has other
    bounds or category values; its thresholds are shown old -> new. Evidence
    changes (coverage, lift) are listed for every criterion in both sets.

    Parameters
    ----------
    old : CriteriaSet
        The champion's criteria.
    new : CriteriaSet
        The challenger's criteria.

    Returns
    -------
    dict
        ``added`` and ``removed`` (lists of ``{"kind", "criterion"}``),
        ``changed`` (also ``was``, ``coverage`` and ``lift`` as ``[old, new]``)
        and ``unchanged`` (with ``coverage`` and ``lift`` as ``[old, new]``).
    """
    old_all, new_all = old.icp + old.anti_icp, new.icp + new.anti_icp
    added, removed, changed, kept = [], [], [], []
    matched_old = set()
    for n in new_all:
        match = next((o for i, o in enumerate(old_all) if i not in matched_old and _same_rule(o, n)), None)
        if match is None:
            added.append({"kind": n.kind, "criterion": n.describe()})
            continue
        matched_old.add(old_all.index(match))
        entry = {
            "kind": n.kind, "criterion": n.describe(),
            "coverage": [match.evidence.get("coverage"), n.evidence.get("coverage")],
            "lift": [match.evidence.get("lift"), n.evidence.get("lift")],
        }
        if match.key != n.key:
            entry["was"] = match.describe()
            changed.append(entry)
        else:
            kept.append(entry)
    for i, o in enumerate(old_all):
        if i not in matched_old:
            removed.append({"kind": o.kind, "criterion": o.describe()})
    return {"added": added, "removed": removed, "changed": changed, "unchanged": kept}


def diff_markdown(diff: dict) -> str:
    """The criteria diff as a short Markdown section."""
    lines = ["## Changes since the last champion", ""]
    if not any(diff.get(k) for k in ("added", "removed", "changed")):
        lines.append("No criterion was added, removed or changed.")
    for e in diff.get("added", []):
        lines.append(f"- **added** ({e['kind']}): {e['criterion']}")
    for e in diff.get("removed", []):
        lines.append(f"- **removed** ({e['kind']}): {e['criterion']}")
    for e in diff.get("changed", []):
        lines.append(f"- **changed** ({e['kind']}): {e['was']} -> {e['criterion']}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- compare
def _champion_on_holdout(scorer, res) -> dict:
    """Champion fit AUC and ICP evidence on the challenger's held-out rows."""
    ho = (res.split == "holdout").to_numpy()
    df = res.accounts[ho]
    cohort = res.cohorts[ho]
    X, _ = scorer.prepare(df)
    ends = (cohort != MIDDLE).to_numpy()
    y = (cohort == BEST).to_numpy()[ends]
    auc = float(roc_auc_score(y, scorer.fit_model.predict_positive(X[ends]))) if len(np.unique(y)) == 2 else np.nan
    churned = res.accounts[res.config.columns.churn][ho].astype(bool) if res.config.columns.churn else None
    icp = segment_evidence(scorer.criteria.icp_mask(X), cohort == BEST, churned,
                           is_worst=cohort == WORST, n_bootstrap=res.config.criteria.n_bootstrap,
                           seed=res.config.models.seed)
    return {"fit_roc_auc": auc, "icp_lift": icp["lift"], "icp_lift_ci": icp["lift_ci"],
            "icp_found": bool(scorer.criteria.icp),
            "icp_tentative": bool((scorer.criteria.verdict or {}).get("tentative"))}


def _gate(champ: dict, chall: dict, cfg: Config) -> tuple[bool, list[str]]:
    g = cfg.retrain
    ok, reasons = True, []
    if np.isfinite(champ["fit_roc_auc"]):
        drop = champ["fit_roc_auc"] - chall["fit_roc_auc"]
        if drop > g.max_auc_drop:
            ok = False
            reasons.append(f"fit AUC {chall['fit_roc_auc']:.3f} trails the champion's "
                           f"{champ['fit_roc_auc']:.3f} by more than {g.max_auc_drop}")
        else:
            reasons.append(f"fit AUC {chall['fit_roc_auc']:.3f} vs champion {champ['fit_roc_auc']:.3f}")
    champ_lo = (champ["icp_lift_ci"] or [np.nan])[0]
    chall_lo = (chall["icp_lift_ci"] or [np.nan])[0]
    champ_holds = champ["icp_found"] and np.isfinite(champ_lo) and champ_lo > 1
    if champ["icp_found"] and not chall["icp_found"]:
        # a challenger without an ICP never wipes the champion's out unattended, even when
        # the champion no longer holds: on scrambled outcomes neither model beats chance,
        # and an AUC of 0.51 "beating" 0.44 is noise (then the run alerts: exit 4)
        ok = False
        reasons.append("the challenger found no reliable ICP while the champion's still holds"
                       if champ_holds else "the challenger found no reliable ICP to replace "
                       "the champion's; decide by hand whether the ICP is gone (icpml promote)")
    elif (champ_holds and chall.get("icp_tentative") and not champ.get("icp_tentative")):
        # every challenger ICP criterion is tentative (the bootstrap refits found other rules
        # as often): it does not replace a stable ICP that still holds on the fresh accounts
        ok = False
        reasons.append("the challenger's ICP is tentative (none of its criteria reappeared in "
                       "most stability refits) while the champion's still holds and is stable")
    elif champ_holds and np.isfinite(chall_lo) and chall_lo < champ_lo - g.max_lift_drop:
        ok = False
        reasons.append(f"ICP lift interval lower bound {chall_lo:.2f} is below the champion's "
                       f"{champ_lo:.2f}")
    elif np.isfinite(chall_lo):
        reasons.append(f"ICP lift lower bound {chall_lo:.2f} vs champion "
                       f"{champ_lo:.2f}" if np.isfinite(champ_lo) else
                       f"ICP lift lower bound {chall_lo:.2f}; the champion has none")
    return ok, reasons


def _model_ref(uri: str) -> tuple[str, str]:
    """(registered name, version) of ``models:/<name>/<version>``."""
    name, version = uri[len("models:/"):].rsplit("/", 1)
    return name, version


# ----------------------------------------------------------------------------- retrain
def retrain(cfg: Config, accounts: pd.DataFrame | None = None, *, dry_run: bool = False,
            progress=None) -> RetrainResult:
    """Train a challenger, compare it with the champion, promote it if it passes.

    The challenger is a full discovery on ``accounts``; the champion scores the
    challenger's held-out rows, and the gate (``cfg.retrain``) compares fit AUC
    and the ICP lift interval. The whole run holds a file lock (filelock), so two
    retrains never overlap.

    Parameters
    ----------
    cfg : Config
        The config (data, tracking, ``retrain`` gate).
    accounts : pandas.DataFrame, optional
        Fresh accounts; read through the config's data source when omitted. Not
        modified.
    dry_run : bool, default False
        Decide, but log, register, promote and write nothing.
    progress : callable, optional
        ``progress(stage, done, total)``, as in :func:`icpml.pipeline.discover`.

    Returns
    -------
    RetrainResult
        ``exit_code`` is what the CLI exits with.

    Raises
    ------
    DataError, ConfigError, TrackingError, LockedError
        Bad data or config, an unreachable store, or another retrain running.
    """
    from icpml import tracking
    from icpml.data import load_source
    from icpml.pipeline import discover

    with _lock(cfg.resolve("mlruns") / ".retrain.lock"):
        if accounts is None:
            accounts, _ = load_source(cfg)
        if not dry_run:
            tracking.configure(cfg)
            tracking.recover(cfg)
        champ = tracking.champion(cfg)
        unchanged = _unchanged(cfg, accounts, champ)
        if unchanged is not None:
            return unchanged
        res = discover(cfg, accounts, progress=progress)
        result, passed = _decide(cfg, res, champ)
        if dry_run:
            result.decision = f"dry-run: would be {result.decision}"
            return result
        _log_and_promote(cfg, result, passed)
        log.info("decision=%s version=%s reasons=%s", result.decision, result.challenger_version,
                 "; ".join(result.reasons))
        return result


def _unchanged(cfg: Config, accounts: pd.DataFrame, champ: dict | None) -> RetrainResult | None:
    """An ``unchanged`` result when the champion was trained on this exact data and config
    and its promotion is complete; else None (a warning says why it trains again)."""
    from icpml import tracking
    from icpml.data import data_fingerprint
    from icpml.provenance import config_hash

    fp, ch = data_fingerprint(accounts), config_hash(cfg)
    if not (champ and champ["tags"].get("icpml.data_fingerprint") == fp
            and champ["tags"].get("icpml.config_hash") == ch):
        return None
    problems = tracking.champion_problems(cfg, champ) + tracking.history_problems(cfg, champ)
    if problems:
        log.warning("champion version %s was trained on this data and config, but %s; "
                    "training again", champ["version"], "; ".join(problems))
        return None
    msg = (f"champion version {champ['version']} was trained on this exact data and "
           "config; nothing to do")
    log.info("decision=unchanged %s", msg)
    return RetrainResult("unchanged", [msg], champion_version=champ["version"])


def _decide(cfg: Config, res, champ: dict | None) -> tuple[RetrainResult, bool]:
    """Challenger ``res`` against the champion: the gate, the criteria diff and drift.
    Returns the result (decision ``promoted`` / ``kept`` / ``alert``) and whether it passed."""
    from icpml import tracking

    chall = {"fit_roc_auc": res.fit_model.holdout["roc_auc"],
             "icp_lift": res.criteria.icp_evidence.get("lift"),
             "icp_lift_ci": res.criteria.icp_evidence.get("lift_ci"),
             "icp_found": bool(res.criteria.verdict.get("icp_found")),
             "icp_tentative": bool(res.criteria.verdict.get("tentative"))}
    result = RetrainResult("promoted", [], challenger=res, comparison={"challenger": chall})
    if champ is None:
        result.reasons.append("no champion yet: the first model is promoted")
        return result, True
    result.champion_version = champ["version"]
    scorer = tracking.load_scorer(f"models:/{cfg.tracking.fit_model_name}@champion", cfg)
    champ_m = _champion_on_holdout(scorer, res)
    result.comparison["champion"] = champ_m
    passed, result.reasons = _gate(champ_m, chall, cfg)
    result.diff = diff_criteria(scorer.criteria, res.criteria)
    try:
        profile = json.loads(tracking.download_run_file(champ["run_id"], "profile.json", cfg))
        result.psi = psi_table(profile, res.accounts)
    except IcpmlError:
        log.warning("the champion run has no training profile; PSI skipped")
    churned = (res.accounts[cfg.columns.churn].astype(bool) if cfg.columns.churn else None)
    result.criteria_drift = criteria_drift(scorer.criteria, res.accounts, res.cohorts == BEST,
                                           churned, seed=cfg.models.seed)
    if not passed:
        lo = (champ_m["icp_lift_ci"] or [np.nan])[0]
        degraded = (champ_m["fit_roc_auc"] < cfg.retrain.alert_auc
                    or (champ_m["icp_found"] and not (np.isfinite(lo) and lo > 1)))
        result.decision = "alert" if degraded else "kept"
        if degraded:
            result.reasons.append("the champion no longer holds on fresh data "
                                  f"(fit AUC {champ_m['fit_roc_auc']:.3f}); review the ICP")
            result.exit_code = ExitCode.GATE
    return result, passed


def _artifacts(result: RetrainResult) -> dict:
    """The retrain's run artifacts: criteria diff (JSON and Markdown) and drift tables."""
    out: dict = {}
    if result.diff:
        out["criteria_diff.json"] = result.diff
        out["criteria_diff.md"] = diff_markdown(result.diff)
    if result.psi is not None:
        out["drift/psi.json"] = {"rows": result.psi.to_dict(orient="records")}
    if result.criteria_drift is not None:
        out["drift/criteria.json"] = {"rows": result.criteria_drift.to_dict(orient="records")}
    return out


def _log_and_promote(cfg: Config, result: RetrainResult, passed: bool) -> None:
    """Log the challenger (run, models @challenger, report), then promote it when it
    ``passed`` or tag the decision; record it in reports/promotions.json."""
    from icpml import tracking
    from icpml.run import record_discovery

    decision = {"decision": result.decision, "reasons": result.reasons,
                "comparison": result.comparison, "diff": result.diff,
                "champion_version": result.champion_version}
    run = record_discovery(result.challenger, retrain=decision, extras=_artifacts(result),
                           assign_champion=False)
    result.run, result.run_id = run, run.run_id
    version = run.model_versions["fit"].rsplit("/", 1)[-1]
    result.challenger_version = version
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    entry = {"time": now, "version": version, "decision": result.decision,
             "reasons": result.reasons, "run_id": run.run_id,
             "report": str(run.report_dir) if run.report_dir else None,
             "challenger": _jsonable(result.comparison["challenger"]),
             "champion": _jsonable(result.comparison.get("champion")),
             "previous_champion": result.champion_version}
    step = "decided"
    try:
        if passed:
            targets = dict(_model_ref(run.model_versions[k]) for k in ("fit", "churn")
                           if k in run.model_versions)
            tracking.promote(cfg, run.run_id, targets, record=entry)
        else:
            tracking.tag_run(run.run_id, {"icpml.decision": result.decision,
                                          "icpml.promotion": json.dumps(entry, sort_keys=True)})
        step = "recorded"
        tracking.record_promotion(cfg, entry)
    except BaseException:
        if tracking.interruption_note() is None:
            tracking._set_note(
                f"challenger version {version} (run {run.run_id[:8]}) was logged and its "
                f"decision ({result.decision}) "
                + ("tagged; the next retrain adds it to reports/promotions.json"
                   if step == "recorded" else "not recorded; the champion is unchanged"))
        raise


def _jsonable(d):
    if d is None:
        return None
    return json.loads(json.dumps(d, default=lambda o: None if o is None else float(o)))
