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
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from icpml.config import Config, find_project_root
from icpml.errors import TrackingError, redact, redact_setting

if TYPE_CHECKING:
    from icpml.pipeline import Discovery
    from icpml.scoring import Scorer

__all__ = ["tracking_uri", "log_discovery", "load_scorer", "IcpPyfuncModel", "configure",
           "champion", "set_alias", "tag_run", "log_run_text", "config_hash", "download_run_file",
           "restore_report", "ModelRef", "resolve_model", "promote", "fit_models"]

log = logging.getLogger(__name__)

# what a registered model needs at load time (icpml itself travels as code_paths)
_PIP_REQUIREMENTS = [
    "numpy", "pandas", "scipy", "scikit-learn", "shap", "pyyaml", "pydantic", "mlflow",
    "pyarrow", "numba",
]


def _quiet_mlflow() -> None:
    """MLflow's own chatter (migrations, pickling advice) is noise to icpml users;
    ``--verbose`` (icpml at DEBUG) lets it through."""
    level = logging.DEBUG if log.getEffectiveLevel() <= logging.DEBUG else logging.ERROR
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(level)
    warnings.filterwarnings("ignore", module="mlflow")
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")


def tracking_uri(cfg: Config | None = None) -> str:
    """The tracking URI: ``MLFLOW_TRACKING_URI`` > ``tracking.uri`` > SQLite in the project."""
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


def configure(cfg: Config | None, *, experiment: bool = True, create: bool = True) -> str | None:
    """Point mlflow at the configured store and experiment; return the experiment id.

    With ``cfg=None`` or ``experiment=False`` only the store is set (for loading
    registered models: scoring neither needs nor creates an experiment). With
    ``create=False`` (every read) a local SQLite store must already exist: it is
    never created as a side effect.

    Raises
    ------
    TrackingError
        The store is unreachable, or (``create=False``) absent.
    """
    import mlflow

    _quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(cfg)
    db = _sqlite_file(uri)
    if db is not None:
        if not create and not db.is_file():
            raise _missing_store(uri, cfg)
        if create:
            db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if cfg is None or not experiment:
        return None
    _check_reachable(uri)
    try:
        exp = mlflow.get_experiment_by_name(cfg.tracking.experiment)
        if exp is None:
            exp_id = mlflow.create_experiment(cfg.tracking.experiment,
                                              artifact_location=_artifact_root(uri))
        else:
            exp_id = exp.experiment_id
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


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("icpml", "scikit-learn", "shap", "mlflow", "pandas", "numpy", "scipy"):
        try:
            out[f"icpml.version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            out[f"icpml.version.{pkg}"] = "unknown"
    return out


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
        for model in (scorer.fit, scorer.churn):  # registered with their compiled trees
            if model is not None:
                model.compile()

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):  # noqa: ARG002
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
    cols += [ColSpec(AnyType(), c, required=False) for c in scorer.input_columns]
    out = Schema([ColSpec("string", scorer.id_column), ColSpec("double", "fit_score"),
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


def config_hash(cfg: Config) -> str:
    """Hash of the settings that change a model (project root excluded)."""
    import hashlib

    d = cfg.to_dict()
    d.pop("project_root", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def champion(cfg: Config) -> dict | None:
    """The fit model's current ``@champion``: version, run id and run tags; None if none."""
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


def set_alias(name: str, alias: str, version: str) -> None:
    """Point ``alias`` of registered model ``name`` at ``version``."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, version)


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    """Add tags to a finished run (values cut to MLflow's 5000-character limit)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for k, v in tags.items():
        client.set_tag(run_id, k, str(v)[:5000])


def log_run_text(run_id: str, text: str, path: str) -> None:
    """Add a text artifact to a finished run."""
    from mlflow import MlflowClient

    MlflowClient().log_text(run_id, text, path)


def _register(name: str, model: IcpPyfuncModel, signature, registered_name: str, *,
              kind: str, config_name: str) -> dict:
    """Log ``model`` in the active run and register it as a new version (no alias yet)."""
    import mlflow
    from mlflow import MlflowClient

    code = str(Path(__file__).resolve().parent)
    chatter = io.StringIO()  # mlflow prints "Successfully registered..." to stderr itself
    with contextlib.redirect_stderr(chatter):
        info = mlflow.pyfunc.log_model(
            name=name, python_model=model, signature=signature,
            registered_model_name=registered_name, pip_requirements=_PIP_REQUIREMENTS,
            code_paths=[code],
        )
    log.debug(chatter.getvalue().strip())
    client = MlflowClient()
    # what the model is, so `icpml score` without --config can find a store's fit models
    client.set_registered_model_tag(registered_name, "icpml.kind", kind)
    client.set_registered_model_tag(registered_name, "icpml.config_name", config_name[:5000])
    version = str(info.registered_model_version)
    return {"name": registered_name, "version": version, "alias": None,
            "uri": f"models:/{registered_name}/{version}"}


def _alias_version(client, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


def _move_aliases(moves: list[tuple[str, str, str | None]]) -> None:
    """Point each ``(name, alias, version)`` in order (``None`` deletes the alias); all or none.

    On a failure the aliases already moved are put back as they were, in reverse order,
    and the error is raised.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    before = [(name, alias, _alias_version(client, name, alias)) for name, alias, _ in moves]
    done: list[tuple[str, str, str | None]] = []
    try:
        for (name, alias, version), prev in zip(moves, before, strict=True):
            if version is None:
                if prev[2] is not None:
                    client.delete_registered_model_alias(name, alias)
            else:
                client.set_registered_model_alias(name, alias, version)
            done.append(prev)
    except BaseException:
        for name, alias, prev in reversed(done):
            try:
                if prev is None:
                    client.delete_registered_model_alias(name, alias)
                else:
                    client.set_registered_model_alias(name, alias, prev)
            except Exception as err:  # keep the first error; say what could not be restored
                log.warning("could not restore %s@%s to version %s (%s)", name, alias, prev,
                            _first_line(err))
        raise


def _assign_aliases(cfg: Config, versions: dict[str, dict]) -> None:
    """After a finished run: its versions become @champion if the fit model has none yet
    (the first run of the name), else @challenger. Churn is set before fit, so a fit
    @champion always has its churn partner in place."""
    from mlflow import MlflowClient

    client = MlflowClient()
    first = _alias_version(client, cfg.tracking.fit_model_name, "champion") is None
    alias = "champion" if first else "challenger"
    moves = []
    churn = versions.get("churn")
    if churn is not None:
        moves.append((churn["name"], alias, churn["version"]))
    elif first:  # a churn champion of an older run must not pair with this fit champion
        moves.append((cfg.tracking.churn_model_name, "champion", None))
    fit = versions["fit"]
    moves.append((fit["name"], alias, fit["version"]))
    _move_aliases([m for m in moves if m[2] is not None or _has_model(client, m[0])])
    for v in versions.values():
        v["alias"] = alias


def _has_model(client, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except Exception:
        return False


def promote(cfg: Config, version: str | int) -> dict:
    """Make version ``version`` of the fit model, and the churn version of the same run, @champion.

    Both aliases move, or neither: churn first, then fit; a failure puts back what had
    moved. When that run registered no churn model, the churn ``@champion`` alias is removed
    (a champion pair always comes from one run).

    Returns
    -------
    dict
        ``fit`` / ``churn``: the new versions (churn None), ``previous``: the fit version
        that was champion (None), ``run_id``.

    Raises
    ------
    TrackingError
        No such store, model or version, or the store refused the change.
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
    previous = _alias_version(client, fit_name, "champion")
    moves = [(churn_name, "champion", churn_v)] if churn_v or _has_model(client, churn_name) else []
    moves.append((fit_name, "champion", str(mv.version)))
    try:
        _move_aliases(moves)
    except Exception as err:
        raise TrackingError(f"promotion of {fit_name} version {version} failed and was undone "
                            f"({_first_line(err)}); check the tracking store and retry") from None
    return {"fit": str(mv.version), "churn": churn_v, "previous": previous, "run_id": mv.run_id}


def _version_list(client, name: str) -> list[str]:
    try:
        return sorted({str(v.version) for v in client.search_model_versions(f"name='{name}'")},
                      key=int)
    except Exception:
        return []


def log_discovery(res: Discovery, *, write_report: bool = True) -> str:
    """Log one discovery as an MLflow run and register its models.

    Writes the report inside the run (its folder name carries the run id) when
    ``write_report`` is true, and logs it as artifacts. Sets ``res.run_id``,
    ``res.model_versions``, ``res.model_aliases`` and ``res.report_dir``.

    Aliases are set after the run has finished with every model registered: ``@champion``
    (churn, then fit) when the fit model has no champion yet, else ``@challenger``. A run
    that fails part-way leaves no version behind and moves no alias.

    Raises
    ------
    TrackingError
        If the store cannot be reached or written.
    """
    import mlflow

    cfg = res.config
    configure(cfg)
    try:
        with mlflow.start_run(run_name=f"{cfg.name}-{res.fingerprint[:8]}") as run:
            res.run_id = run.info.run_id
            mlflow.set_tags({"icpml.config_name": cfg.name, "icpml.data_fingerprint": res.fingerprint,
                             "icpml.config_hash": config_hash(cfg),
                             "icpml.verdict": res.criteria.verdict.get("message", "")[:5000]})
            params = _flatten(cfg.to_dict())
            params["data.fingerprint"] = res.fingerprint
            items = sorted(params.items())
            for i in range(0, len(items), 90):
                mlflow.log_params(dict(items[i:i + 90]))
            mlflow.log_dict(json.loads(redact(json.dumps(cfg.to_dict()))), "config.yaml")
            mlflow.set_tags(_versions())
            metrics = {f"fit.{k}": v for k, v in res.fit.metrics().items()}
            if res.churn is not None:
                metrics.update({f"churn.{k}": v for k, v in res.churn.metrics().items()})
            metrics.update({k: float(v) for k, v in res.summary().items()})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                                if v is not None and pd.notna(v)})
            mlflow.log_text(res.criteria.to_json(), "criteria/criteria.json")
            from icpml.drift import data_profile

            train_rows = res.accounts[res.split == "train"]
            mlflow.log_dict(data_profile(train_rows, res.kinds), "profile.json")
            for name, extra in (res.extras or {}).items():
                if isinstance(extra, str):
                    mlflow.log_text(extra, name)
                else:
                    mlflow.log_dict(extra, name)
            if write_report:
                from icpml import report as report_mod

                res.report_dir = report_mod.write_report(res)
                mlflow.log_artifacts(str(res.report_dir), artifact_path="report")
            example = _input_example(res.scorer, res.accounts)
            sig = _signature(res.scorer, example)
            versions = {"fit": _register("fit_model", IcpPyfuncModel(res.scorer, "scored"), sig,
                                         cfg.tracking.fit_model_name, kind="fit",
                                         config_name=cfg.name)}
            if res.churn is not None:
                versions["churn"] = _register("churn_model", IcpPyfuncModel(res.scorer, "churn"),
                                              sig, cfg.tracking.churn_model_name, kind="churn",
                                              config_name=cfg.name)
            mlflow.set_tags({f"icpml.{k}_model_version": v["version"] for k, v in versions.items()})
            res.model_versions = {k: v["uri"] for k, v in versions.items()}
    except BaseException as err:
        # interrupted (SIGTERM, Ctrl-C) or failed part-way: no half-registered version, no
        # report of a run that did not finish; the run itself is closed as FAILED by MLflow
        _undo_run(res)
        if isinstance(err, (OSError, mlflow.exceptions.MlflowException)) and not isinstance(
                err, TrackingError):
            raise TrackingError(f"logging to '{redact(tracking_uri(cfg))}' failed "
                                f"({_first_line(err)}); check the tracking store and disk "
                                "space") from None
        raise
    # only now, the run finished with every model registered: aliases (all or none)
    try:
        _assign_aliases(cfg, versions)
    except Exception as err:
        fit_v = versions["fit"]["version"]
        raise TrackingError(f"run {res.run_id} registered {cfg.tracking.fit_model_name} version "
                            f"{fit_v} but its aliases could not be set ({_first_line(err)}); "
                            f"retry with `icpml promote -c <config> --version {fit_v}`") from None
    res.model_aliases = {k: v["alias"] for k, v in versions.items()}
    return res.run_id


def _undo_run(res: Discovery) -> None:
    """Delete the model versions a failed run registered and the report it wrote."""
    import shutil

    from mlflow import MlflowClient

    if res.run_id:
        try:
            client = MlflowClient()
            for mv in client.search_model_versions(f"run_id='{res.run_id}'"):
                client.delete_model_version(mv.name, mv.version)
                log.warning("removed %s version %s of the unfinished run", mv.name, mv.version)
        except Exception as err:  # the store may be what failed; say so, keep the first error
            log.warning("could not remove the unfinished run's model versions (%s)",
                        _first_line(err))
    if res.report_dir is not None and res.report_dir.exists():
        shutil.rmtree(res.report_dir, ignore_errors=True)
    res.report_dir, res.model_versions, res.model_aliases = None, {}, {}


@dataclass(frozen=True)
class ModelRef:
    """Which model a command uses: what was asked for and what it resolved to.

    Attributes
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
        """``models:/b-fit@champion (version 3, run 3f2a9c1d...)``."""
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


def fit_models(cfg: Config | None = None) -> list[str]:
    """Registered fit models in the store (tagged by icpml, or named ``*-fit``), sorted."""
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


def resolve_model(model_uri: str | None, cfg: Config | None = None) -> ModelRef:
    """The model a command uses, resolved to a version and run, without loading it.

    ``model_uri`` wins; else the config's ``tracking.fit_model_name@champion``; else, with
    neither, the store's only registered fit model ``@champion``.

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


def load_scorer(model_uri: str | ModelRef, cfg: Config | None = None) -> Scorer:
    """Load the :class:`~icpml.scoring.Scorer` behind a registered model or run.

    Parameters
    ----------
    model_uri : str or ModelRef
        ``models:/b-fit@champion``, ``models:/b-fit/3``, ``runs:/<id>/fit_model``, or a
        :class:`ModelRef` from :func:`resolve_model` (its resolved version is loaded).
    cfg : Config, optional
        Used to find the tracking store (which must exist: reading never creates one).

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


def restore_report(ref: str, dest_root: Path, cfg: Config | None = None) -> Path:
    """Restore the report a run logged, into ``dest_root/<config name>_<run8>``.

    Parameters
    ----------
    ref : str
        A run id, or a model URI (``models:/acme-fit@champion``, ``models:/acme-fit/3``)
        whose version's run is used.
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


def download_run_file(run_id: str, path: str, cfg: Config) -> str:
    """Text of one artifact of a run (e.g. ``criteria/criteria.json``)."""
    import mlflow

    configure(cfg, experiment=False, create=False)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                        dst_path=tmp)
        except Exception as err:
            raise TrackingError(f"run '{run_id}' has no artifact '{path}' ({_first_line(err)})") from None
        return Path(local).read_text(encoding="utf-8")
