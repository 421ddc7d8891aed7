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
  model the id and ``churn_risk``. The first version of each is aliased
  ``@champion``; later versions get ``@challenger`` (promotion is retraining's job).

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
           "restore_report"]

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


def configure(cfg: Config | None, *, experiment: bool = True) -> str | None:
    """Point mlflow at the configured store and experiment; return the experiment id.

    With ``cfg=None`` or ``experiment=False`` only the store is set (for loading
    registered models: scoring neither needs nor creates an experiment).
    """
    import mlflow

    _quiet_mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(cfg)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
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


def _register(name: str, model: IcpPyfuncModel, signature, registered_name: str) -> dict:
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
    version = str(info.registered_model_version)
    client = MlflowClient()
    try:
        client.get_model_version_by_alias(registered_name, "champion")
        alias = "challenger"
    except Exception:
        alias = "champion"  # the first version becomes champion
    client.set_registered_model_alias(registered_name, alias, version)
    return {"name": registered_name, "version": version, "alias": alias,
            "uri": f"models:/{registered_name}/{version}"}


def log_discovery(res: Discovery, *, write_report: bool = True) -> str:
    """Log one discovery as an MLflow run and register its models.

    Writes the report inside the run (its folder name carries the run id) when
    ``write_report`` is true, and logs it as artifacts. Sets ``res.run_id``,
    ``res.model_versions`` and ``res.report_dir``.

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
                                         cfg.tracking.fit_model_name)}
            if res.churn is not None:
                versions["churn"] = _register("churn_model", IcpPyfuncModel(res.scorer, "churn"),
                                              sig, cfg.tracking.churn_model_name)
            mlflow.set_tags({f"icpml.{k}_model_version": v["version"] for k, v in versions.items()})
            res.model_versions = {k: v["uri"] for k, v in versions.items()}
            res.model_aliases = {k: v["alias"] for k, v in versions.items()}
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


def load_scorer(model_uri: str, cfg: Config | None = None) -> Scorer:
    """Load the :class:`~icpml.scoring.Scorer` behind a registered model or run.

    Parameters
    ----------
    model_uri : str
        ``models:/icp-fit@champion``, ``models:/icp-fit/3`` or ``runs:/<id>/fit_model``.
    cfg : Config, optional
        Used to find the tracking store.
    """
    import mlflow

    configure(cfg, experiment=False)
    if model_uri.startswith(("models:/", "runs:/")):
        _check_reachable(tracking_uri(cfg))
    try:
        # suppress_warnings skips MLflow's check of the installed packages against the
        # model's requirements (~1 s of package metadata scans per load); scikit-learn
        # itself warns when a model was pickled by another version
        model = mlflow.pyfunc.load_model(model_uri, suppress_warnings=True)
    except Exception as err:
        raise TrackingError(f"cannot load model '{model_uri}' ({_first_line(err)}); "
                            "run `icpml demo` or `icpml discover` first, or check --model") from None
    inner = model.unwrap_python_model()
    return inner.scorer


def restore_report(ref: str, dest_root: Path, cfg: Config | None = None) -> Path:
    """Restore the report a run logged, into ``dest_root/<config name>_<run8>``.

    Parameters
    ----------
    ref : str
        A run id, or a model URI (``models:/icp-fit@champion``, ``models:/icp-fit/3``)
        whose version's run is used.
    """
    import shutil

    import mlflow
    from mlflow import MlflowClient

    configure(cfg)
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
                            "check the id, or run `icpml demo` / `icpml discover` first") from None
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

    configure(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                        dst_path=tmp)
        except Exception as err:
            raise TrackingError(f"run '{run_id}' has no artifact '{path}' ({_first_line(err)})") from None
        return Path(local).read_text(encoding="utf-8")
