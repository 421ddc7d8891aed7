"""MLflow tracking: the only module that imports mlflow.

One discovery is one MLflow run in the experiment named by ``tracking.experiment``:

* **params**: the resolved config, flattened (``columns.id``, ``models.seed``...),
  and the data fingerprint; the whole config is also logged as ``config.yaml``;
* **metrics**: CV and held-out metrics of both models, ICP coverage and lift;
* **artifacts**: the report folder (``report.html``, ``criteria.json``,
  ``criteria.md``, ``contrast.csv``, ``scored.csv``, figures);
* **models**: two pyfunc models registered as ``tracking.fit_model_name`` and
  ``tracking.churn_model_name``. Their ``predict`` takes raw account columns:
  the fit model returns the full scored output (:mod:`icpml.scoring`), the churn
  model the id and ``churn_risk``. Unset, the names are ``<config name>-fit`` and
  ``<config name>-churn`` and the experiment is the config's name.

Aliases are set only once the run has finished with every model registered: the
first run of a name makes its versions ``@champion``; later runs' versions become
``@challenger`` until promoted (:func:`promote`, ``icpml promote``, or ``icpml retrain``).
Reading (scoring, restoring a report) never creates a store: a missing one is an error
that says where icpml looked.

The store defaults to SQLite inside the project, ``sqlite:///<root>/mlruns/mlflow.db``
with artifacts under ``<root>/mlruns/artifacts`` (plain-file stores are refused by
MLflow 3); ``MLFLOW_TRACKING_URI``, then ``tracking.uri``, override it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from icpml import interrupts
from icpml._io import atomic_write_text, folder_name
from icpml.config import Config, find_project_root
from icpml.errors import TrackingError, redact, redact_setting
from icpml.provenance import run_provenance

if TYPE_CHECKING:
    from icpml.pipeline import Discovery
    from icpml.scoring import Scorer

__all__ = ["tracking_uri", "log_discovery", "load_scorer", "IcpPyfuncModel", "configure",
           "champion", "set_alias", "tag_run", "log_run_text", "download_run_file",
           "restore_report", "ModelRef", "resolve_model", "promote", "fit_models", "LoggedRun",
           "recover", "record_promotion", "promotion_history", "reconcile_history"]

log = logging.getLogger(__name__)

# what a registered model needs at load time (icpml itself travels as code_paths)
_PIP_REQUIREMENTS = [
    "numpy", "pandas", "scipy", "scikit-learn", "shap", "pyyaml", "pydantic", "mlflow",
    "pyarrow", "numba",
]


#: third-party loggers whose chatter (migrations, pickling advice) is noise to icpml users
_CHATTY = ("mlflow", "alembic", "urllib3")


@contextlib.contextmanager
def _quiet():
    """While icpml talks to MLflow (a context manager or a decorator): MLflow's own log
    lines below ERROR and its warnings are hidden, unless icpml logs at DEBUG
    (``--verbose``). The previous logger levels and warning filters are restored on exit,
    so an application's logging setup is never changed behind its back."""
    loggers = [logging.getLogger(name) for name in _CHATTY]
    saved = [lg.level for lg in loggers]
    if log.getEffectiveLevel() > logging.DEBUG:
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.ERROR))
    try:
        with warnings.catch_warnings():
            if log.getEffectiveLevel() > logging.DEBUG:
                warnings.filterwarnings("ignore", module="mlflow")
            yield
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def tracking_uri(cfg: Config | None = None) -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` > ``tracking.uri`` > SQLite in the project.

    Parameters
    ----------
    cfg : Config, optional
        The config; a relative ``sqlite:///`` path in ``tracking.uri`` resolves
        from its project root. Without it, the project root is found from the
        working directory.

    Returns
    -------
    str
        An MLflow tracking URI; by default
        ``sqlite:///<project>/mlruns/mlflow.db``.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    if cfg is None:
        return "sqlite:///" + str(find_project_root() / "mlruns" / "mlflow.db")
    if cfg.tracking.uri:
        uri = cfg.tracking.uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            # relative SQLite path: resolve from the project root, not the cwd
            uri = "sqlite:///" + str(cfg.resolve(uri[len("sqlite:///"):]))
        return uri
    return "sqlite:///" + str(cfg.resolve("mlruns") / "mlflow.db")


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite store; a server decides its own."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "artifacts").resolve().as_uri()
    return None


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def local_store(cfg: Config | None = None) -> Path | None:
    """The SQLite file of the tracking store (:func:`tracking_uri`), existing or not; None
    for a store that is not a local SQLite file (a tracking server, a database URL)."""
    return _sqlite_file(tracking_uri(cfg))


def _missing_store(uri: str, cfg: Config | None) -> TrackingError:
    """The one-line error for a read from a local store that does not exist (none is created)."""
    where = redact(str(_sqlite_file(uri)))
    if os.environ.get("MLFLOW_TRACKING_URI"):
        why, fix = ("set by MLFLOW_TRACKING_URI", "point MLFLOW_TRACKING_URI at the store that "
                    "holds your models, or unset it")
    elif cfg is not None and cfg.tracking.uri:
        why, fix = (f"tracking.uri of config '{cfg.name}'", "fix tracking.uri, or run "
                    "`icpml discover -c <config>` first")
    elif cfg is not None:
        why, fix = (f"the default store of config '{cfg.name}', project folder "
                    f"'{cfg.project_root or find_project_root()}'",
                    "run `icpml discover -c <config>` first, or set tracking.uri or "
                    "MLFLOW_TRACKING_URI to the store that holds its model")
    else:
        why, fix = (f"the default store of project folder '{find_project_root()}'",
                    "pass --config <config>.yaml to use that config's store, set "
                    "MLFLOW_TRACKING_URI, or run `icpml discover -c <config>.yaml` first")
    return TrackingError(f"no tracking store at '{where}' ({why}; nothing was created); {fix}")


@_quiet()
def configure(cfg: Config | None, *, experiment: bool = True, create: bool = True) -> str | None:
    """Point mlflow at the configured store and experiment; return the experiment id.

    With ``cfg=None`` or ``experiment=False`` only the store is set (for loading
    registered models: scoring neither needs nor creates an experiment). With
    ``create=False`` (every read) a local SQLite store must already exist: it is
    never created as a side effect.

    Parameters
    ----------
    cfg : Config or None
        The config (tracking URI and experiment name).
    experiment : bool, default True
        Also set (and create if needed) the experiment.
    create : bool, default True
        Whether a local SQLite store may be created.

    Returns
    -------
    str or None
        The experiment id, or None when only the store was set.

    Raises
    ------
    TrackingError
        The store is unreachable, or (``create=False``) absent.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(cfg)
    db = _sqlite_file(uri)
    if db is not None:
        if not create and not db.is_file():
            raise _missing_store(uri, cfg)
        if create:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                why = err.strerror or _first_line(err)
                raise TrackingError(
                    f"tracking store folder '{redact(str(db.parent))}' cannot be created "
                    f"({why}); set tracking.uri or MLFLOW_TRACKING_URI to a store in a "
                    "writable folder") from None
    # mlflow.set_*_uri also write MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI into os.environ;
    # left there, the next config in this process (a notebook, a test session, products)
    # would read them as the user's override and log into this config's store
    user = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for k, v in user.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if cfg is None or not experiment:
        return None
    _check_reachable(uri)
    try:
        # a new store is created here (MLflow's schema migrations): a SIGTERM is acted on
        # once they are done, never half-way, which leaves a store no command can open
        with interrupts.deferred(), store_lock(uri):
            exp = mlflow.get_experiment_by_name(cfg.tracking.experiment)
            if exp is None:
                exp_id = mlflow.create_experiment(cfg.tracking.experiment,
                                                  artifact_location=_artifact_root(uri))
            else:
                exp_id = exp.experiment_id
            if uri.startswith("sqlite:///"):
                # the registry opens its own connection and may create its tables: inside the lock
                from mlflow import MlflowClient

                MlflowClient().search_registered_models(max_results=1)
    except TrackingError:
        raise
    except Exception as err:  # the store is down, locked or unreadable
        raise TrackingError(
            f"tracking store '{redact(uri)}' cannot be used ({_first_line(err)}); "
            "set MLFLOW_TRACKING_URI or tracking.uri to a reachable store"
        ) from None
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Refuse an HTTP(S) store nobody listens on in seconds, not after MLflow's minutes of retries.

    Only a TCP connect, and skipped when a proxy is configured for the host
    (the proxy, not this machine, reaches the server).
    """
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    if parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(parts.hostname):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except (OSError, ValueError) as err:
        why = getattr(err, "strerror", None) or _first_line(err)
        raise TrackingError(f"tracking store '{redact(uri)}' cannot be reached ({why}); start the "
                            "MLflow server or set MLFLOW_TRACKING_URI or tracking.uri to a "
                            "reachable store") from None


def _first_line(err: BaseException) -> str:
    text = redact(str(err)).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            text = redact_setting(key, v)
            out[key] = text if len(text) <= 6000 else text[:5997] + "..."
    return out


# ----------------------------------------------------------------------------- pyfunc
try:  # the pyfunc base class only exists when mlflow is importable
    import mlflow.pyfunc as _pyfunc

    _PythonModel: Any = _pyfunc.PythonModel
except Exception:  # pragma: no cover - mlflow is a hard dependency
    _PythonModel = object


class IcpPyfuncModel(_PythonModel):
    """Registered model: raw account columns in, scored output out.

    Parameters
    ----------
    scorer : Scorer
    output : {"scored", "churn"}
        The full scored output (fit model) or id + ``churn_risk`` (churn model).
    """

    def __init__(self, scorer: Scorer, output: str = "scored"):
        self.scorer = scorer
        self.output = output
        for model in (scorer.fit_model, scorer.churn_model):  # registered with their compiled trees
            if model is not None:
                model.compile()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002
        """Score ``model_input`` as :meth:`Scorer.score` does (the MLflow pyfunc entry point).

        Parameters
        ----------
        context : mlflow.pyfunc.PythonModelContext
            Unused (MLflow passes it).
        model_input : pandas.DataFrame
            Raw accounts (anything ``pd.DataFrame`` accepts). Not modified.
        params : dict, optional
            ``{"explain": True}`` (or the older ``reasons``) for SHAP reasons.

        Returns
        -------
        pandas.DataFrame
            The scored table; for the churn model only the id and ``churn_risk``.
        """
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        params = params or {}
        explain = bool(params.get("explain", params.get("reasons", False)))
        scored = self.scorer.score(df, explain=explain and self.output == "scored")
        if self.output == "churn":
            return scored[[self.scorer.id_column, "churn_risk"]]
        return scored


def _signature(scorer: Scorer, example: pd.DataFrame):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import AnyType

    # every column is optional and of any type: prospect lists rarely carry every
    # column and type them loosely (employees as int or float, flags as "yes"/1);
    # the scorer coerces each value itself and reports what it had to do without
    cols = [ColSpec(AnyType(), scorer.id_column, required=False)]
    labels = [c for c in getattr(scorer, "label_columns", []) if c != scorer.id_column]
    cols += [ColSpec(AnyType(), c, required=False) for c in labels]  # names pass through
    cols += [ColSpec(AnyType(), c, required=False) for c in scorer.input_columns if c not in labels]
    out = Schema([ColSpec("string", scorer.id_column),
                  *[ColSpec(AnyType(), c, required=False) for c in labels],
                  ColSpec("double", "fit_score"),
                  ColSpec("double", "churn_risk"), ColSpec("string", "tier"),
                  ColSpec("boolean", "icp_match"), ColSpec("boolean", "anti_icp_match"),
                  ColSpec("string", "exclusion_reasons"), ColSpec("string", "top_reasons"),
                  ColSpec("string", "data_issues")])
    # explain: per-account SHAP reasons instead of criteria reasons ("reasons": older name)
    params = ParamSchema([ParamSpec("explain", "boolean", False),
                          ParamSpec("reasons", "boolean", False)])
    return ModelSignature(inputs=Schema(cols), outputs=out, params=params)


def _input_example(scorer: Scorer, df: pd.DataFrame) -> pd.DataFrame:
    X, _ = scorer.prepare(df.head(5))
    X.insert(0, scorer.id_column, df[scorer.id_column].head(5).astype(str).to_numpy())
    for c in X.columns:
        if str(X[c].dtype) in ("string", "str"):
            X[c] = X[c].astype(object)
        elif str(X[c].dtype) == "boolean":
            X[c] = X[c].astype(object)
    return X


@_quiet()
def champion(cfg: Config) -> dict | None:
    """The fit model's current ``@champion``: version, run id and run tags; None if none.

    Parameters
    ----------
    cfg : Config
        Names the store and the fit model.

    Returns
    -------
    dict or None
        ``version``, ``run_id``, ``tags`` (the run's tags, empty when the run
        cannot be read) and ``uri`` (``models:/<name>/<version>``); None when no
        version holds the alias.
    """
    from mlflow import MlflowClient

    configure(cfg)
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(cfg.tracking.fit_model_name, "champion")
    except Exception:
        return None
    try:
        run = client.get_run(mv.run_id)
        tags = dict(run.data.tags)
    except Exception:
        tags = {}
    return {"version": str(mv.version), "run_id": mv.run_id, "tags": tags,
            "uri": f"models:/{cfg.tracking.fit_model_name}/{mv.version}"}


@_quiet()
def set_alias(name: str, alias: str, version: str) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``.

    Parameters
    ----------
    name : str
        Registered model name.
    alias : str
        E.g. ``champion`` or ``challenger``.
    version : str
        The model version.
    """
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)


@_quiet()
def tag_run(run_id: str, tags: dict[str, str]) -> None:
    """Add tags to a finished run (values cut to MLflow's 5000-character limit).

    Parameters
    ----------
    run_id : str
        The MLflow run.
    tags : dict of str to str
        Tag name -> value (values converted to text).
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v)[:5000])


@_quiet()
def log_run_text(run_id: str, text: str, path: str) -> None:
    """Add a text artifact to a finished run.

    Parameters
    ----------
    run_id : str
        The MLflow run.
    text : str
        The content.
    path : str
        Artifact path inside the run, e.g. ``retrain/decision.md``.
    """
    from mlflow import MlflowClient

    MlflowClient().log_text(run_id, text, path)


def _register(name: str, model: IcpPyfuncModel, signature, registered_name: str) -> dict:
    """Log ``model`` in the active run and register it as a new version (no alias yet).

    Four positional arguments, a signature kept stable: crash drills (the
    ``split-champion-on-kill`` case) wrap this function to kill the process inside it."""
    import mlflow

    code = str(Path(__file__).resolve().parent)
    chatter = io.StringIO()  # mlflow prints "Successfully registered..." to stderr itself
    with contextlib.redirect_stderr(chatter):
        info = mlflow.pyfunc.log_model(
            name=name, python_model=model, signature=signature,
            registered_model_name=registered_name, pip_requirements=_PIP_REQUIREMENTS,
            code_paths=[code],
        )
    log.debug(chatter.getvalue().strip())
    version = str(info.registered_model_version)
    return {"name": registered_name, "version": version, "alias": None,
            "uri": f"models:/{registered_name}/{version}"}


@_quiet()
def promote_version(cfg: Config, version: str | int) -> dict:
    """Make version ``version`` of the fit model, and the churn version of the same run, @champion.

    The user-facing promotion (``icpml promote``): it resolves the run's versions and
    hands them to :func:`promote`, which moves both aliases or neither (journaled,
    rolled back on interruption, repaired by the next run after a kill -9).

    Returns
    -------
    dict
        ``fit`` / ``churn``: the new versions (churn None), ``previous``: the fit version
        that was champion (None), ``run_id``, and ``record``: the promotion entry for
        ``promotions.json`` (None when the version already was champion: nothing moved).

    Raises
    ------
    ConfigError
        The model has versions, but not this one.
    TrackingError
        No such store or model, or the store refused the change.
    """
    from mlflow import MlflowClient

    configure(cfg, experiment=False, create=False)
    client = MlflowClient()
    fit_name, churn_name = cfg.tracking.fit_model_name, cfg.tracking.churn_model_name
    version = str(version).strip()
    try:
        mv = client.get_model_version(fit_name, version)
    except Exception:
        known = _version_list(client, fit_name)
        from icpml.errors import ConfigError

        raise (ConfigError if known else TrackingError)(
            f"model '{fit_name}' has no version {version} in '{redact(tracking_uri(cfg))}' "
            + (f"(its versions: {', '.join(known)}); pass one of them with --version"
               if known else "(no version at all); run `icpml discover -c <config>` first")
        ) from None
    churn_v = None
    try:
        found = client.search_model_versions(f"name='{churn_name}' and run_id='{mv.run_id}'")
        churn_v = str(found[0].version) if found else None
    except Exception:
        churn_v = None
    current = _alias_version(client, fit_name)
    previous = str(current.version) if current is not None else None
    done = {"fit": str(mv.version), "churn": churn_v, "previous": previous, "run_id": mv.run_id,
            "record": None}
    if previous == str(mv.version):
        return done
    record = {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "version": str(mv.version), "decision": "promoted",
              "reasons": [f"promoted by hand (icpml promote) over version {previous}"
                          if previous else "promoted by hand (icpml promote)"],
              "run_id": mv.run_id, "report": None, "previous_champion": previous}
    targets = {fit_name: str(mv.version)}
    if churn_v:
        targets[churn_name] = churn_v
    try:
        promote(cfg, mv.run_id, targets, record=record)
    except (KeyboardInterrupt, TrackingError):
        raise
    except Exception as err:
        raise TrackingError(f"promotion of {fit_name} version {version} failed and was undone "
                            f"({_first_line(err)}); check the tracking store and retry") from None
    done["record"] = record
    return done


def _version_list(client, name: str) -> list[str]:
    try:
        return sorted({str(v.version) for v in client.search_model_versions(f"name='{name}'")},
                      key=int)
    except Exception:
        return []


@dataclass(frozen=True)
class LoggedRun:
    """What :func:`log_discovery` recorded.

    Parameters
    ----------
    run_id : str
        The MLflow run the discovery was logged as.
    model_versions : dict of str to str
        ``{"fit": "models:/<name>/<version>", "churn": ...}`` (churn when trained).
    model_aliases : dict of str to str
        Alias each model got (``"champion"`` / ``"challenger"``); empty when retraining
        (it promotes by itself).
    report_dir : pathlib.Path or None
        The report folder written inside the run.
    """

    run_id: str
    model_versions: dict[str, str]
    model_aliases: dict[str, str]
    report_dir: Path | None = None


def log_discovery(res: Discovery, *, write_report: Callable[[str], Path] | None = None,
                  extras: dict | None = None, assign_champion: bool = True) -> LoggedRun:
    """Log one discovery as an MLflow run and register its models; ``res`` is not changed.

    Parameters
    ----------
    res : Discovery
    write_report : callable, optional
        ``write_report(run_id) -> folder``: writes the report inside the run (its folder
        name carries the run id); the folder is logged as the run's ``report/`` artifacts.
    extras : dict, optional
        More artifacts: ``{artifact path: text or JSON-ready dict}`` (retraining's criteria
        diff and drift tables).
    assign_champion : bool, default True
        Aliases are set after the run has finished with every model registered:
        ``@champion`` (churn, then fit) when the fit model has no champion yet, else
        ``@challenger``. Retraining passes False and promotes by itself.

    Returns
    -------
    LoggedRun
        The run id, model versions, aliases and report folder. The run carries
        ``icpml.pid`` / ``icpml.host`` tags so that a later run can tell a killed one
        (:func:`sweep_orphans`). A run that fails part-way leaves no version or report
        behind and moves no alias.

    Raises
    ------
    TrackingError
        If the store cannot be reached or written.
    """
    import mlflow
    from mlflow import MlflowClient

    cfg = res.config
    configure(cfg)
    run_id, report_dir, versions = None, None, {}
    names = [cfg.tracking.fit_model_name]
    if res.churn_model is not None:
        names.append(cfg.tracking.churn_model_name)
    # registered models this run would create: an undone run removes them again
    new_names = [n for n in names if not _registered(MlflowClient(), n)]
    try:
        # a SIGTERM is acted on between the writes, not inside one (icpml.interrupts)
        with interrupts.deferred(), _quiet(), mlflow.start_run() as run:
            run_id = run.info.run_id
            # the run's name is its report folder's name (reports/<name>_<run id[:8]>)
            mlflow.set_tag("mlflow.runName", folder_name(cfg.name, run_id))
            _log_run_data(res, cfg, extras or {})
            interrupts.checkpoint()
            if write_report is not None:
                report_dir = write_report(run_id)
                interrupts.checkpoint()
                mlflow.log_artifacts(str(report_dir), artifact_path="report")
                interrupts.checkpoint()
            versions = _register_models(res, cfg)
            interrupts.checkpoint()
    except BaseException as err:
        # interrupted (SIGTERM, Ctrl-C) or failed part-way: no half-registered version, no
        # report of a run that did not finish; the run itself is closed as FAILED by MLflow
        with interrupts.deferred(check=False):  # a second SIGTERM does not cut the undo short
            _undo_run(run_id, report_dir, new_names)
        if isinstance(err, (OSError, mlflow.exceptions.MlflowException)) and not isinstance(
                err, TrackingError):
            raise TrackingError(f"logging to '{redact(tracking_uri(cfg))}' failed "
                                f"({_first_line(err)}); check the tracking store and disk "
                                "space") from None
        raise
    aliases: dict[str, str] = {}
    # only now, the run finished with every model registered: aliases (all or none)
    if assign_champion:
        try:
            with interrupts.deferred(check=False):  # all the aliases or none (see promote)
                aliases = assign_first_champion(cfg, run_id, versions)
            if interrupts.pending():  # the run is complete: say so, then stop
                _set_note(f"run {run_id} was recorded completely (models and aliases) before "
                          "the interruption")
                interrupts.checkpoint()
        except TrackingError as err:
            fit_v = versions["fit"]["version"]
            raise TrackingError(f"{err}; or run `icpml promote -c <config> --version {fit_v}`") from None
    return LoggedRun(run_id, {k: v["uri"] for k, v in versions.items()}, aliases, report_dir)


def _log_run_data(res: Discovery, cfg: Config, extras: dict) -> None:
    """Tags, params, config, metrics, criteria.json, the training profile and ``extras``
    of the active run."""
    import mlflow

    from icpml.drift import data_profile

    mlflow.set_tags({"icpml.pid": str(os.getpid()), "icpml.host": socket.gethostname(),
                     **run_provenance(cfg, res.fingerprint),
                     "icpml.verdict": res.criteria.verdict.get("message", "")[:5000]})
    params = _flatten(cfg.to_dict())
    params["data.fingerprint"] = res.fingerprint
    items = sorted(params.items())
    for i in range(0, len(items), 90):
        mlflow.log_params(dict(items[i:i + 90]))
    mlflow.log_dict(json.loads(redact(json.dumps(cfg.to_dict()))), "config.yaml")
    metrics = {f"fit.{k}": v for k, v in res.fit_model.metrics().items()}
    if res.churn_model is not None:
        metrics.update({f"churn.{k}": v for k, v in res.churn_model.metrics().items()})
    # the summary's flat fit_/churn_ AUCs repeat fit.* / churn.* above: log each once
    metrics.update({k: float(v) for k, v in res.summary().items()
                    if not k.startswith(("fit_", "churn_"))})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                        if v is not None and pd.notna(v)})
    mlflow.log_text(res.criteria.to_json(), "criteria/criteria.json")
    train_rows = res.accounts[res.split == "train"]
    mlflow.log_dict(data_profile(train_rows, res.kinds), "profile.json")
    for name, extra in extras.items():
        if isinstance(extra, str):
            mlflow.log_text(extra, name)
        else:
            mlflow.log_dict(extra, name)


def _register_models(res: Discovery, cfg: Config) -> dict[str, dict]:
    """Register the fit (and churn) model of the active run; ``{"fit": {"uri", "version"}}``."""
    import mlflow

    example = _input_example(res.scorer, res.accounts)
    sig = _signature(res.scorer, example)
    from mlflow import MlflowClient

    versions = {"fit": _register("fit_model", IcpPyfuncModel(res.scorer, "scored"), sig,
                                 cfg.tracking.fit_model_name)}
    if res.churn_model is not None:
        versions["churn"] = _register("churn_model", IcpPyfuncModel(res.scorer, "churn"), sig,
                                      cfg.tracking.churn_model_name)
    client = MlflowClient()
    for kind, v in versions.items():  # so `icpml score` without --config finds a store's fit models
        client.set_registered_model_tag(v["name"], "icpml.kind", kind)
        client.set_registered_model_tag(v["name"], "icpml.config_name", cfg.name[:5000])
    mlflow.set_tags({f"icpml.{k}_model_version": v["version"] for k, v in versions.items()})
    return versions


def _registered(client, name: str) -> bool:
    """Whether the store has a registered model called ``name``."""
    return bool(client.search_registered_models(filter_string=f"name='{name}'"))


def _undo_run(run_id: str | None, report_dir: Path | None, new_names: list[str] = ()) -> None:
    """Delete the model versions a failed run registered, the registered models it created
    (``new_names``, when they hold no version), and the report it wrote."""
    import shutil

    from mlflow import MlflowClient

    if run_id:
        try:
            client = MlflowClient()
            for mv in client.search_model_versions(f"run_id='{run_id}'"):
                client.delete_model_version(mv.name, mv.version)
                log.warning("removed %s version %s of the unfinished run", mv.name, mv.version)
            for name in new_names:  # else `icpml score` would find a model with no version
                if _registered(client, name) and not client.search_model_versions(
                        f"name='{name}'"):
                    client.delete_registered_model(name)
        except Exception as err:  # the store may be what failed; say so, keep the first error
            log.warning("could not remove the unfinished run's model versions (%s)",
                        _first_line(err))
            _set_note(f"run {run_id[:8]} stopped part-way and its model versions could not "
                      "be removed; the next `icpml retrain` or `icpml discover` marks it FAILED")
    if report_dir is not None and report_dir.exists():
        shutil.rmtree(report_dir, ignore_errors=True)


@dataclass(frozen=True)
class ModelRef:
    """Which model a command uses: what was asked for and what it resolved to.

    Parameters
    ----------
    uri : str
        As given or derived (``models:/b-fit@champion``).
    load_uri : str
        What is loaded: the resolved version (``models:/b-fit/3``), so an alias moving
        meanwhile cannot change the model under the command.
    name, version, alias, run_id : str or None
        Registered name, version number, alias asked for and the run that logged it.
    """

    uri: str
    load_uri: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None

    def describe(self) -> str:
        """The reference in words, for messages and logs.

        Returns
        -------
        str
            E.g. ``models:/b-fit@champion (version 3, run 3f2a9c1d...)``.
        """
        facts = []
        if self.version:
            facts.append(f"version {self.version}")
        if self.run_id:
            facts.append(f"run {self.run_id}")
        return self.uri + (f" ({', '.join(facts)})" if facts else "")


def _parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, None, alias); ``models:/name/3`` -> (name, "3", None)."""
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, None, alias
    name, _, version = rest.partition("/")
    return name, (version or None), None


@_quiet()
def fit_models(cfg: Config | None = None) -> list[str]:
    """Registered fit models in the store (tagged by icpml, or named ``*-fit``), sorted.

    Parameters
    ----------
    cfg : Config, optional
        Names the store (which must exist: reading never creates one).

    Returns
    -------
    list of str
        Registered model names.

    Raises
    ------
    TrackingError
        The store cannot be read.
    """
    from mlflow import MlflowClient

    configure(cfg, experiment=False, create=False)
    try:
        models = MlflowClient().search_registered_models(max_results=1000)
    except Exception as err:
        raise TrackingError(f"tracking store '{redact(tracking_uri(cfg))}' cannot be read "
                            f"({_first_line(err)})") from None
    return sorted(m.name for m in models
                  if (m.tags or {}).get("icpml.kind", "fit" if m.name.endswith("-fit") else "")
                  == "fit")


@_quiet()
def resolve_model(model_uri: str | None, cfg: Config | None = None) -> ModelRef:
    """The model a command uses, resolved to a version and run, without loading it.

    ``model_uri`` wins; else the config's ``tracking.fit_model_name@champion``; else, with
    neither, the store's only registered fit model ``@champion``.

    Parameters
    ----------
    model_uri : str or None
        ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``runs:/...``.
    cfg : Config, optional
        Names the store and the default model.

    Returns
    -------
    ModelRef
        What was asked for and the version it resolved to.

    Raises
    ------
    TrackingError
        No store (none is created), no such model, version or alias. The message says
        which store was searched and what it holds.
    ConfigError
        Neither given and the store holds several fit models: which one is ambiguous.
    """
    from mlflow import MlflowClient

    from icpml.errors import ConfigError

    configure(cfg, experiment=False, create=False)
    uri = tracking_uri(cfg)
    if model_uri is None or model_uri.startswith(("models:/", "runs:/")):
        _check_reachable(uri)
    if model_uri is None:
        if cfg is not None:
            model_uri = f"models:/{cfg.tracking.fit_model_name}@champion"
        else:
            names = fit_models(None)
            if not names:
                raise TrackingError(f"the tracking store '{redact(uri)}' holds no model; run "
                                    "`icpml discover -c <config>.yaml` first, or pass --config "
                                    "or MLFLOW_TRACKING_URI to use another store")
            if len(names) > 1:
                raise ConfigError(f"the tracking store holds several models ({', '.join(names)}); "
                                  "pass --config <config>.yaml to score with its model, or "
                                  f"--model models:/{names[0]}@champion")
            model_uri = f"models:/{names[0]}@champion"
    if model_uri.startswith("runs:/"):
        run_id = model_uri[len("runs:/"):].split("/", 1)[0]
        return ModelRef(model_uri, model_uri, run_id=run_id or None)
    if not model_uri.startswith("models:/"):
        return ModelRef(model_uri, model_uri)
    name, version, alias = _parse_models_uri(model_uri)
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except Exception:
        try:
            others = [n for n in fit_models(cfg) if n != name]
        except TrackingError:
            others = []
        held = (f"it holds {', '.join(others)}: pass --model, or set tracking.fit_model_name "
                "to keep using one of them" if others else "it holds no model")
        raise TrackingError(f"no model '{name}' in the tracking store '{redact(uri)}' ({held}); "
                            f"run `icpml discover -c <config>` for it first, or check --config "
                            "and MLFLOW_TRACKING_URI") from None
    try:
        if alias:
            mv = client.get_model_version_by_alias(name, alias)
        elif version in (None, "latest"):
            mv = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
        else:
            mv = client.get_model_version(name, version)
    except Exception:
        known = _version_list(client, name)
        what = f"alias @{alias}" if alias else f"version {version}"
        hint = (f"promote one: `icpml promote -c <config> --version {known[-1]}`"
                if alias == "champion" and known else "check --model")
        raise TrackingError(f"model '{name}' has no {what} in '{redact(uri)}' (versions: "
                            f"{', '.join(known) or 'none'}); {hint}") from None
    return ModelRef(model_uri, f"models:/{name}/{mv.version}", name=name, version=str(mv.version),
                    alias=alias, run_id=mv.run_id)


@_quiet()
def load_scorer(model_uri: str | ModelRef, cfg: Config | None = None) -> Scorer:
    """Load the :class:`~icpml.scoring.Scorer` behind a registered model or run.

    Parameters
    ----------
    model_uri : str or ModelRef
        ``models:/b-fit@champion``, ``models:/b-fit/3``, ``runs:/<id>/fit_model``, or a
        :class:`ModelRef` from :func:`resolve_model` (its resolved version is loaded).
    cfg : Config, optional
        Used to find the tracking store (which must exist: reading never creates one).

    Returns
    -------
    Scorer
        The scorer pickled with the model (models, criteria, schema).

    Raises
    ------
    TrackingError
        No store, or the model cannot be loaded.
    """
    import mlflow

    uri = model_uri.load_uri if isinstance(model_uri, ModelRef) else model_uri
    configure(cfg, experiment=False, create=False)
    if uri.startswith(("models:/", "runs:/")):
        _check_reachable(tracking_uri(cfg))
    try:
        # suppress_warnings skips MLflow's check of the installed packages against the
        # model's requirements (~1 s of package metadata scans per load); scikit-learn
        # itself warns when a model was pickled by another version
        model = mlflow.pyfunc.load_model(uri, suppress_warnings=True)
    except Exception as err:
        raise TrackingError(f"cannot load model '{uri}' from '{redact(tracking_uri(cfg))}' "
                            f"({_first_line(err)}); run `icpml discover -c <config>` first, "
                            "or check --model and --config") from None
    inner = model.unwrap_python_model()
    return inner.scorer


@_quiet()
def restore_report(ref: str, dest_root: Path, cfg: Config | None = None) -> Path:
    """Restore the report a run logged, into ``dest_root/<config name>_<run8>``.

    The report is downloaded next to the destination and moved into place, so
    an interrupted restore leaves no half-written folder.

    Parameters
    ----------
    ref : str
        A run id, or a model URI (``models:/acme-fit@champion``, ``models:/acme-fit/3``)
        whose version's run is used.
    dest_root : pathlib.Path
        Folder under which the report folder is created (replacing an older copy).
    cfg : Config, optional
        Names the store (which must exist).

    Returns
    -------
    pathlib.Path
        The restored report folder.

    Raises
    ------
    TrackingError
        No such run or model, or the run has no stored report.
    """
    import shutil

    import mlflow
    from mlflow import MlflowClient

    configure(cfg, experiment=False, create=False)
    client = MlflowClient()
    run_id = ref
    try:
        if ref.startswith("models:/"):
            name, _, rest = ref[len("models:/"):].partition("/")
            if "@" in name:
                name, alias = name.split("@", 1)
                run_id = client.get_model_version_by_alias(name, alias).run_id
            else:
                run_id = client.get_model_version(name, rest).run_id
        run = client.get_run(run_id)
    except Exception as err:
        raise TrackingError(f"cannot find run or model '{ref}' ({_first_line(err)}); "
                            "check the id and --config, or run `icpml discover` first") from None
    name = run.data.tags.get("icpml.config_name", "icpml")
    dest = Path(dest_root) / f"{name}_{run_id[:8]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report",
                                                    dst_path=str(tmp))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(local, dest)
    except Exception as err:
        raise TrackingError(f"run '{run_id}' has no stored report ({_first_line(err)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@_quiet()
def download_run_file(run_id: str, path: str, cfg: Config) -> str:
    """Text of one artifact of a run (e.g. ``criteria/criteria.json``).

    Parameters
    ----------
    run_id : str
        The MLflow run.
    path : str
        Artifact path inside the run.
    cfg : Config
        Names the store (which must exist).

    Returns
    -------
    str
        The artifact's text (UTF-8).

    Raises
    ------
    TrackingError
        The run has no such artifact.
    """
    import mlflow

    configure(cfg, experiment=False, create=False)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                        dst_path=tmp)
        except Exception as err:
            raise TrackingError(f"run '{run_id}' has no artifact '{path}' ({_first_line(err)})") from None
        return Path(local).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- crash safety
# A process can be stopped anywhere: SIGTERM (unwinds, see icpml.cli), or kill -9 (nothing runs).
# * store creation is serialised by a file lock beside the SQLite file (store_lock);
# * a promotion (several @champion aliases) is one transaction: a journal tag on the fit model
#   says what is being promoted before any alias moves (promote); an exception or SIGTERM rolls
#   back; a kill -9 leaves the journal, which the next run finishes or rolls back
#   (repair_promotions);
# * runs carry their pid and host: the next run marks those whose process is gone FAILED,
#   removes their model versions and temporary report folders, and flags their reports
#   (sweep_orphans).

#: registered-model tag on the fit model while a promotion is under way (JSON plan)
JOURNAL_TAG = "icpml.pending_promotion"
_LOCK_TIMEOUT = 120.0
_note: str | None = None


def _set_note(text: str) -> None:
    global _note
    _note = text


def interruption_note() -> str | None:
    """What an interrupted command left behind, in one sentence; None when nothing was recorded.

    Set when a promotion was rolled back (or could not be) and when a failed run's model
    versions could not be removed; the CLI prints it instead of "nothing was half-written".
    """
    return _note


@contextlib.contextmanager
def _held(lock, what: str):
    from filelock import Timeout

    try:
        lock.acquire()
    except Timeout:
        raise TrackingError(f"another icpml run has held {lock.lock_file} for over "
                            f"{lock.timeout:.0f} s while {what}; wait for it to finish, then "
                            "run again") from None
    try:
        yield
    finally:
        lock.release()


def store_lock(uri: str):
    """A context manager serialising creation and migration of a local SQLite store.

    Two first runs creating ``mlruns/mlflow.db`` at once would both migrate the empty
    database and one would fail; the second now waits (at most 120 s, then
    :class:`TrackingError`). Other stores (servers) serialise themselves: no-op.
    """
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from filelock import FileLock

    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    return _held(FileLock(str(db.parent / ".store.lock"), timeout=_LOCK_TIMEOUT,
                          is_singleton=True), "creating the tracking store")


def promotion_lock(cfg: Config):
    """A context manager held around every @champion change and every repair (re-entrant)."""
    from filelock import FileLock

    path = cfg.resolve("mlruns") / ".promote.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return _held(FileLock(str(path), timeout=_LOCK_TIMEOUT, is_singleton=True),
                 "changing @champion")


@contextlib.contextmanager
def _signals_held():
    """Defer SIGINT/SIGTERM while a rollback runs (delivered right after it)."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _alias_version(client, name: str, alias: str = "champion"):
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:
        return None


def _describe(targets: dict[str, str | None]) -> str:
    return ", ".join(f"{n}@champion={v if v is not None else 'none'}" for n, v in targets.items())


def _run_versions(client, run_id: str) -> dict[str, str]:
    """{registered name: version} of every model version a run registered."""
    return {mv.name: str(mv.version) for mv in client.search_model_versions(f"run_id='{run_id}'")}


def _complete(client, run_id: str, targets: dict[str, str]) -> bool:
    """The run finished and registered every target version."""
    try:
        if client.get_run(run_id).info.status != "FINISHED":
            return False
        have = _run_versions(client, run_id)
    except Exception:
        return False
    return all(have.get(n) == str(v) for n, v in targets.items())


def _decision_tags(run_id: str, record: dict | None, decision: str) -> dict[str, str]:
    tags = {"icpml.decision": decision}
    if record is not None:
        tags["icpml.promotion"] = json.dumps({**record, "decision": decision, "run_id": run_id},
                                             sort_keys=True)
    return tags


@_quiet()
def promote(cfg: Config, run_id: str, targets: dict[str, str], *, record: dict | None = None) -> dict:
    """Point ``@champion`` of every model in ``targets`` at its version, all or nothing.

    Steps, under :func:`promotion_lock`: the plan (targets, previous champions, record) is
    written as the ``icpml.pending_promotion`` tag of the fit model; the aliases move; the
    run is tagged; the tag is removed. An exception or interruption (SIGTERM) in between
    puts the previous champions back and tags the run ``icpml.decision=interrupted``
    before re-raising; a kill -9 leaves the journal for :func:`repair_promotions`.

    Parameters
    ----------
    cfg : Config
        Names the store.
    run_id : str
        The run that registered the versions; it gets the ``icpml.decision`` tag
        (and ``icpml.promotion``, the JSON ``record``, when given).
    targets : dict of str to str
        ``{registered model name: version}``, the fit model first (it carries the journal).
    record : dict, optional
        The decision record (e.g. retrain's gate figures), stored with the run.

    Returns
    -------
    dict
        The previous champions, ``{name: version or None}``.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    journal = next(iter(targets))
    with promotion_lock(cfg):
        previous = {n: (str(mv.version) if (mv := _alias_version(client, n)) else None)
                    for n in targets}
        plan = {"state": "pending", "run_id": run_id, "targets": targets, "previous": previous,
                "record": record, "pid": os.getpid(), "host": socket.gethostname()}
        try:
            client.set_registered_model_tag(journal, JOURNAL_TAG, json.dumps(plan, sort_keys=True))
            for name, version in targets.items():
                set_alias(name, "champion", version)
            tag_run(run_id, _decision_tags(run_id, record, (record or {}).get("decision", "promoted")))
        except BaseException as err:
            with _signals_held():
                why = "interrupted" if isinstance(err, KeyboardInterrupt) else _first_line(err)
                _roll_back(client, plan, journal, why)
            raise
        try:
            client.delete_registered_model_tag(journal, JOURNAL_TAG)
        except BaseException:
            _set_note(f"the promotion of run {run_id[:8]} was complete ({_describe(targets)}) "
                      "when the interruption came")
            raise
    return previous


def _roll_back(client, plan: dict, journal: str, why: str) -> None:
    """Put the plan's previous champions back, tag the run, clear the journal; sets the note."""
    run8 = plan["run_id"][:8]
    try:
        plan = {**plan, "state": "rolling_back"}  # a kill -9 from here on: the next run rolls back
        client.set_registered_model_tag(journal, JOURNAL_TAG, json.dumps(plan, sort_keys=True))
        for name, version in plan["previous"].items():
            if version is None:
                with contextlib.suppress(Exception):
                    client.delete_registered_model_alias(name, "champion")
            else:
                client.set_registered_model_alias(name, "champion", version)
        record = plan.get("record")
        if record is not None:
            record = {**record, "reasons": [*record.get("reasons", []),
                                            f"the promotion was stopped ({why}) and rolled back; "
                                            "the previous champion stays"]}
        for k, v in _decision_tags(plan["run_id"], record, "interrupted").items():
            client.set_tag(plan["run_id"], k, v[:5000])
        client.delete_registered_model_tag(journal, JOURNAL_TAG)
    except Exception as err:
        msg = (f"the promotion of run {run8} was stopped part-way and could not be rolled back "
               f"({_first_line(err)}); the next `icpml retrain` or `icpml discover` repairs it")
        log.warning(msg)
        _set_note(msg)
        return
    # the CLI prints the note as its last line; a log line would say it twice
    _set_note(f"the promotion of run {run8} was rolled back; {_describe(plan['previous'])} "
              "as before")


@_quiet()
def assign_first_champion(cfg: Config, run_id: str, versions: dict[str, dict]) -> dict[str, str]:
    """At the end of a finished run: make its versions ``@champion`` if the fit model has none.

    Parameters
    ----------
    versions : dict
        ``{kind: {"name": registered name, "version": str, "alias": str}}`` as registered
        by the run (the fit model under ``"fit"``).

    Returns
    -------
    dict
        ``{kind: alias}``: all ``"champion"`` (one :func:`promote`, all or nothing), or,
        when a champion already exists, ``"challenger"`` for each version.

    Raises
    ------
    TrackingError
        If the store cannot be written.
    """
    import mlflow

    if not versions:
        return {}
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        with promotion_lock(cfg):
            fit = versions.get("fit") or next(iter(versions.values()))
            if _alias_version(client, fit["name"]) is None:
                targets = {fit["name"]: fit["version"]}
                targets.update({v["name"]: v["version"] for v in versions.values()})
                promote(cfg, run_id, targets, record={
                    "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                    "version": fit["version"], "decision": "promoted",
                    "reasons": [f"first model of {fit['name']}: promoted when its run finished"],
                    "run_id": run_id, "report": next((str(f) for f in report_folders(cfg, run_id)), None),
                    "challenger": None, "champion": None, "previous_champion": None})
                return {k: "champion" for k in versions}
            for v in versions.values():
                if v.get("alias") != "challenger":
                    client.set_registered_model_alias(v["name"], "challenger", v["version"])
            return {k: "challenger" for k in versions}
    except (OSError, mlflow.exceptions.MlflowException) as err:
        raise TrackingError(f"setting @champion in '{redact(tracking_uri(cfg))}' failed "
                            f"({_first_line(err)}); the next run repairs it") from None


@_quiet()
def repair_promotions(cfg: Config) -> list[str]:
    """Finish or roll back what an interrupted promotion left; one message per repair.

    Under :func:`promotion_lock` (so no live promotion is in flight):

    * a journal (``icpml.pending_promotion`` on the fit model) in state ``pending`` whose
      run finished with every target version registered is completed (aliases, decision
      and ``icpml.promotion`` tags); otherwise it is rolled back to the previous champions;
    * without a journal, ``@champion`` of the fit and churn models pointing at different runs
      (a split, e.g. left by an older icpml) is completed from the fit champion's run when that
      run finished; a fit champion from an unfinished run is rolled back to the churn
      champion's run, or removed when there is none;
    * a consistent champion whose run has no ``icpml.decision`` tag gets it (and a promotion
      record), so the decision is on record.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    fit_name, churn_name = cfg.tracking.fit_model_name, cfg.tracking.churn_model_name
    msgs: list[str] = []
    with promotion_lock(cfg):
        try:
            rm = client.get_registered_model(fit_name)
        except Exception:
            return msgs  # nothing registered yet
        raw = (rm.tags or {}).get(JOURNAL_TAG)
        if raw:
            plan = json.loads(raw)
            run8 = plan["run_id"][:8]
            if plan.get("state") == "pending" and _complete(client, plan["run_id"], plan["targets"]):
                for name, version in plan["targets"].items():
                    client.set_registered_model_alias(name, "champion", version)
                record = plan.get("record")
                if record is not None:
                    record = {**record, "reasons": [*record.get("reasons", []),
                                                    "the promotion was stopped part-way and "
                                                    "completed by the next run"]}
                for k, v in _decision_tags(plan["run_id"], record,
                                           (record or {}).get("decision", "promoted")).items():
                    client.set_tag(plan["run_id"], k, v[:5000])
                client.delete_registered_model_tag(fit_name, JOURNAL_TAG)
                msgs.append(f"run {run8} was stopped in the middle of its promotion; completed it: "
                            f"{_describe(plan['targets'])}")
            else:
                _roll_back(client, plan, fit_name, "stopped")
                msgs.append(f"run {run8} was stopped in the middle of its promotion; rolled it "
                            f"back: {_describe(plan['previous'])}")
        msgs += _repair_split(cfg, client, fit_name, churn_name)
    return msgs


def _repair_split(cfg: Config, client, fit_name: str, churn_name: str) -> list[str]:
    fit_mv = _alias_version(client, fit_name)
    if fit_mv is None:
        return []
    run_id = fit_mv.run_id
    try:
        run = client.get_run(run_id)
        have = _run_versions(client, run_id)
    except Exception:
        return []
    names = [n for n in (fit_name, churn_name) if n in have]
    current = {n: (str(mv.version) if (mv := _alias_version(client, n)) else None) for n in names}
    finished = run.info.status == "FINISHED" and "icpml.fit_model_version" in run.data.tags
    if finished and all(current[n] == have[n] for n in names):
        if "icpml.decision" in run.data.tags:
            return []
        record = _repair_record(cfg, run_id, have.get(fit_name), "recorded by the next run: "
                                "this champion's promotion had no decision on record", None)
        tag_run(run_id, _decision_tags(run_id, record, "promoted"))
        return [f"champion run {run_id[:8]} had no promotion decision on record; recorded it"]
    if finished:
        targets = {n: have[n] for n in names}
        previous = current.get(churn_name)
        for n, v in targets.items():
            client.set_registered_model_alias(n, "champion", v)
        record = _repair_record(cfg, run_id, have.get(fit_name),
                                f"completed by the next run: {fit_name}@champion and "
                                f"{churn_name}@champion pointed at different runs", previous)
        tag_run(run_id, _decision_tags(run_id, record, "promoted"))
        return [f"{fit_name} and {churn_name} @champion pointed at different runs (a promotion "
                f"stopped part-way); completed it: {_describe(targets)}"]
    churn_mv = _alias_version(client, churn_name)
    other = None
    if churn_mv is not None and churn_mv.run_id != run_id:
        other_v = _run_versions(client, churn_mv.run_id).get(fit_name)
        if other_v and _complete(client, churn_mv.run_id, {fit_name: other_v}):
            other = other_v
    if other is not None:
        client.set_registered_model_alias(fit_name, "champion", other)
        return [f"{fit_name}@champion was version {fit_mv.version} of unfinished run {run_id[:8]}; "
                f"rolled back to version {other} (the {churn_name}@champion run)"]
    client.delete_registered_model_alias(fit_name, "champion")
    if churn_mv is not None and churn_mv.run_id == run_id:
        client.delete_registered_model_alias(churn_name, "champion")
    return [f"{fit_name}@champion was version {fit_mv.version} of unfinished run {run_id[:8]} "
            "and no finished run can replace it; removed the alias (the next run promotes "
            "its own model)"]


def _repair_record(cfg: Config, run_id: str, version: str | None, reason: str,
                   previous: str | None) -> dict:
    folders = report_folders(cfg, run_id)
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "version": version,
            "decision": "promoted", "reasons": [reason], "run_id": run_id,
            "report": str(folders[0]) if folders else None, "challenger": None,
            "champion": None, "previous_champion": previous}


def report_folders(cfg: Config, run_id: str) -> list[Path]:
    """The visible report folders of a run (``<report.dir>/<name>_<run8>``)."""
    reports = cfg.resolve(cfg.report.dir)
    if not reports.is_dir():
        return []
    return sorted(p for p in reports.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name.endswith(f"_{run_id[:8]}"))


@_quiet()
def champion_problems(cfg: Config, champ: dict) -> list[str]:
    """Why the ``@champion`` of :func:`champion` is not a complete, consistent promotion.

    Empty when its run FINISHED, recorded its model versions, every model it registered
    (fit and churn) is ``@champion``, its decision is tagged and no promotion is pending.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    problems = []
    try:
        run = client.get_run(champ["run_id"])
        have = _run_versions(client, champ["run_id"])
        rm = client.get_registered_model(cfg.tracking.fit_model_name)
    except Exception as err:
        return [f"its run cannot be read ({_first_line(err)})"]
    if run.info.status != "FINISHED":
        problems.append(f"its run {champ['run_id'][:8]} is {run.info.status}, not FINISHED")
    if "icpml.fit_model_version" not in run.data.tags:
        problems.append("its run never recorded its model versions")
    for name in (cfg.tracking.fit_model_name, cfg.tracking.churn_model_name):
        if name in have:
            mv = _alias_version(client, name)
            if mv is None or str(mv.version) != have[name]:
                problems.append(f"{name}@champion is {mv.version if mv else 'not set'}, not "
                                f"version {have[name]} of the same run")
    if "icpml.decision" not in run.data.tags:
        problems.append("no promotion decision is on record")
    if JOURNAL_TAG in (rm.tags or {}):
        problems.append("a promotion is pending")
    return problems


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (unknowable here on Windows: assumed alive,
    where ``os.kill(pid, 0)`` would send CTRL_C_EVENT)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave it alone
    return True


def _mark_unfinished(folder: Path, run_id: str, why: str) -> Path:
    """Rename a report folder to ``<name>-unfinished`` with an UNFINISHED.txt and an HTML banner."""
    dest = folder.with_name(folder.name + "-unfinished")
    n = 2
    while dest.exists():
        dest = folder.with_name(f"{folder.name}-unfinished-{n}")
        n += 1
    os.replace(folder, dest)
    text = (f"UNFINISHED: run {run_id} {why}. Its model was never registered as finished; "
            "do not use this report.\n")
    (dest / "UNFINISHED.txt").write_text(text, encoding="utf-8")
    html = dest / "report.html"
    if html.is_file():
        import html as html_mod
        import re

        page = html.read_text(encoding="utf-8")
        banner = ('<div style="background:#b00020;color:#fff;padding:12px;font-weight:bold">'
                  f"{html_mod.escape(text.strip())}</div>")
        page, k = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + banner, page, count=1)
        html.write_text(page if k else banner + page, encoding="utf-8")
    return dest


@_quiet()
def sweep_orphans(cfg: Config, *, before: float | None = None) -> list[str]:
    """Clean up after runs of this experiment that were killed (kill -9, power loss).

    * a RUNNING run whose ``icpml.pid`` no longer exists on this host (``icpml.host``) is
      marked FAILED (tag ``icpml.orphaned``); the model versions it registered are deleted
      unless one is ``@champion``; its report folders are renamed ``<name>_<run8>-unfinished``
      with an ``UNFINISHED.txt`` and a banner in ``report.html``;
    * hidden temporary report folders and files (``<report.dir>/.<name>.*``) older than
      ``before`` (default: now) are removed unless a live run owns them; those of no known
      run only when over ten minutes old as well.

    Runs of other hosts, and runs without a pid tag (older icpml), are left alone.
    Returns one message per cleaned run or folder.
    """
    import shutil

    from mlflow import MlflowClient

    before = time.time() if before is None else before
    client = MlflowClient()
    msgs: list[str] = []
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    host = socket.gethostname()
    live: set[str] = set()
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'",
                                  max_results=1000)
        for run in runs:
            tags = run.data.tags
            pid, run_host, run_id = tags.get("icpml.pid"), tags.get("icpml.host"), run.info.run_id
            if not pid or run_host != host or _pid_alive(int(pid)):
                live.add(run_id[:8])
                continue
            why = f"was stopped (process {pid} on {host} is gone) before it finished"
            removed = []
            for mv in client.search_model_versions(f"run_id='{run_id}'"):
                if "champion" in (mv.aliases or []):
                    continue
                client.delete_model_version(mv.name, mv.version)
                removed.append(f"{mv.name} version {mv.version}")
            client.set_tag(run_id, "icpml.orphaned", why)
            client.set_terminated(run_id, "FAILED")
            marked = [_mark_unfinished(f, run_id, why).name for f in report_folders(cfg, run_id)]
            msgs.append(f"run {run_id[:8]} {why}: marked FAILED"
                        + (f", removed {', '.join(removed)}" if removed else "")
                        + (f", report renamed {', '.join(marked)}" if marked else ""))
    reports = cfg.resolve(cfg.report.dir)
    if reports.is_dir():
        for p in reports.iterdir():
            if not p.name.startswith(".") or p.name in (".", ".."):
                continue
            temp = (p.is_dir() and p.name.count(".") >= 2) or p.name.endswith(".tmp")
            if not temp:
                continue
            stem = p.name[1:].split(".", 1)[0]
            owner = stem.rsplit("_", 1)[-1] if "_" in stem else ""
            try:
                age = p.stat().st_mtime
            except OSError:
                continue
            if owner in live or age >= before:
                continue
            known = len(owner) == 8 and all(c in "0123456789abcdef" for c in owner)
            if not known and age > before - 600:
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            msgs.append(f"removed the temporary {p.name} left by a stopped run")
    return msgs


# ----------------------------------------------------------------------------- promotion history
def promotion_history(cfg: Config) -> list[dict]:
    """The promotion decisions recorded for this project, oldest first.

    Parameters
    ----------
    cfg : Config
        The project's config; the file is ``<report.dir>/promotions.json``.

    Returns
    -------
    list of dict
        The file's entries as written by :func:`record_promotion` (``time``,
        ``version``, ``decision``, ``reasons``, ...); empty when there is no file.

    Raises
    ------
    ValueError
        The file exists but is not valid JSON (``json.JSONDecodeError``).
    """
    hist_path = cfg.resolve(cfg.report.dir) / "promotions.json"
    return json.loads(hist_path.read_text()) if hist_path.is_file() else []


def record_promotion(cfg: Config, entry: dict) -> None:
    """Append a decision to reports/promotions.json and rewrite reports/index.md (atomically).

    Each file is replaced as a whole (written beside it, then renamed), so a killed
    process leaves the previous version, never half a file.

    Parameters
    ----------
    cfg : Config
        The project's config (``report.dir``, ``name``, ``tracking.fit_model_name``).
    entry : dict
        The decision: ``time``, ``version``, ``decision`` (``"promoted"``, ...),
        ``reasons`` (list of str), and optionally ``report`` (its folder) and ``run_id``.
    """
    _write_history(cfg, [*promotion_history(cfg), entry])


def _write_history(cfg: Config, history: list[dict]) -> None:
    """Write reports/promotions.json and reports/index.md (atomically)."""
    reports = cfg.resolve(cfg.report.dir)
    hist_path = reports / "promotions.json"
    atomic_write_text(hist_path, json.dumps(history, indent=2, sort_keys=True) + "\n")
    champ = next((h for h in reversed(history) if h["decision"] == "promoted"), None)
    lines = [f"# {cfg.name}: ICP reports", ""]
    if champ:
        rel = os.path.relpath(champ["report"], reports) if champ.get("report") else None
        lines += [f"**Champion:** {cfg.tracking.fit_model_name} version {champ['version']} "
                  f"(promoted {champ['time']})", ""]
        if rel:
            lines += [f"[Read the champion's criteria report]({rel}/report.html) "
                      f"([Markdown]({rel}/criteria.md))", ""]
    lines += ["## Decisions", "", "| time | version | decision | reasons | report |",
              "| --- | --- | --- | --- | --- |"]
    for h in reversed(history):
        rel = os.path.relpath(h["report"], reports) + "/report.html" if h.get("report") else ""
        link = f"[report]({rel})" if rel else ""
        lines.append(f"| {h['time']} | {h.get('version') or ''} | {h['decision']} | "
                     f"{'; '.join(h['reasons']).replace('|', '/')} | {link} |")
    atomic_write_text(reports / "index.md", "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- recovery
def reconcile_history(cfg: Config) -> list[str]:
    """Add to reports/promotions.json the decisions recorded on runs but missing from it.

    A run stopped after its decision was tagged (``icpml.promotion``) and before the
    file was written left such a gap. The runs of ``tracking.experiment`` with this
    config name are read (up to 1,000); the file and reports/index.md are rewritten,
    sorted by time, only when something was missing.

    Parameters
    ----------
    cfg : Config
        The project's config (``tracking.experiment``, ``name``, ``report.dir``); the
        tracking store must already be configured.

    Returns
    -------
    list of str
        One message per decision added (run id, decision, version); empty when nothing
        was missing or the experiment does not exist.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(cfg.tracking.experiment)
    if exp is None:
        return []
    history = promotion_history(cfg)
    known = {h.get("run_id") for h in history}
    missing = []
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        tags = run.data.tags
        if (run.info.run_id in known or "icpml.promotion" not in tags
                or tags.get("icpml.config_name", cfg.name) != cfg.name):
            continue
        try:
            entry = json.loads(tags["icpml.promotion"])
        except ValueError:  # cut at MLflow's tag length
            entry = {"time": datetime.fromtimestamp(run.info.start_time / 1000, UTC)
                     .strftime("%Y-%m-%d %H:%M:%S UTC"),
                     "version": tags.get("icpml.fit_model_version"), "reasons": []}
        entry.update(run_id=run.info.run_id, decision=tags.get("icpml.decision", entry.get("decision")))
        entry.setdefault("reasons", [])
        missing.append(entry)
    if not missing:
        return []
    history = sorted([*history, *missing], key=lambda h: str(h.get("time", "")))
    _write_history(cfg, history)
    return [f"reports/promotions.json lacked the decision of run {e['run_id'][:8]} "
            f"({e['decision']}, version {e.get('version')}); added it" for e in missing]


def recover(cfg: Config, *, history: bool = True) -> list[str]:
    """Repair what killed or interrupted runs left, before a run starts; one warning each.

    In order: :func:`sweep_orphans` (RUNNING runs whose process is gone
    -> FAILED, their versions removed, their reports renamed ``-unfinished``, stale
    ``.<name>.*`` temporary folders removed), :func:`repair_promotions`
    (a half-done promotion finished or rolled back, split champions reunited) and, with
    ``history``, decisions missing from ``reports/promotions.json`` added
    (:func:`reconcile_history`). Every message is logged as a warning and returned.

    Parameters
    ----------
    cfg : Config
        The project's config; the tracking store must already be configured.
    history : bool, default True
        Also reconcile ``reports/promotions.json`` with the runs' decisions.

    Returns
    -------
    list of str
        One message per repair, in the order made; empty when nothing needed repair.
    """
    msgs = sweep_orphans(cfg)
    msgs += repair_promotions(cfg)
    if history:
        msgs += reconcile_history(cfg)
    for m in msgs:
        log.warning("repaired: %s", m)
    return msgs


def history_problems(cfg: Config, champ: dict) -> list[str]:
    if "icpml.promotion" not in champ["tags"]:
        return []
    if any(h.get("run_id") == champ["run_id"] for h in promotion_history(cfg)):
        return []
    return ["reports/promotions.json has no entry for it"]
