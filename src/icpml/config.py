"""Typed, validated configuration for an icpml run.

A run is described by one YAML file, loaded into :class:`Config`. Every model
forbids unknown keys, so a misspelt key is an error that names the key rather
than a silently ignored setting. Relative paths resolve from the *project root*
(see :func:`find_project_root`), never from the working directory, so the same
config gives the same run from a notebook, the CLI or cron.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from icpml.errors import ConfigError

__all__ = [
    "Config",
    "ColumnsConfig",
    "OutcomeMetric",
    "CohortsConfig",
    "ModelsConfig",
    "CriteriaConfig",
    "TrackingConfig",
    "DataConfig",
    "ReportConfig",
    "RetrainConfig",
    "FEATURE_GROUPS",
    "load_config",
    "find_project_root",
    "demo_config",
]

#: The groups a targetable (pre-sale) column may belong to.
FEATURE_GROUPS = (
    "firmographic",
    "technographic",
    "behavioural",
    "intent",
    "procurement",
    "economic",
)

_ROOT_MARKERS = ("pyproject.toml", ".git", "icpml.yaml", ".icpml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeMetric(_Strict):
    """One outcome that feeds the composite value score.

    Attributes
    ----------
    column : str
        Column holding the metric (ARR, NRR, tenure, NPS, support cost...).
    direction : {"higher", "lower"}
        Whether a higher value means a better customer. Support cost is "lower".
    weight : float
        Weight of this metric's percentile rank in the composite score.
    """

    column: str
    direction: Literal["higher", "lower"] = "higher"
    weight: float = Field(default=1.0, gt=0)


class ColumnsConfig(_Strict):
    """Column roles. Only ``features`` may ever become ICP criteria.

    Attributes
    ----------
    id : str
        Unique account identifier.
    name : str, optional
        Human-readable account name, used in reports only.
    features : dict
        Targetable (pre-sale) columns by group (firmographic, technographic,
        behavioural, intent, procurement, economic). These are the only inputs
        of the fit model and the only columns criteria may name.
    categorical : list of str
        Feature columns to treat as categorical even if they look numeric
        (for example a numeric region code). Strings and booleans are
        categorical automatically.
    post_sale : list of str
        Columns that exist only after the sale (usage, tickets). They may feed
        the churn model but never become criteria.
    outcomes : list of OutcomeMetric
        Metrics combined into the value score that defines best and worst.
    churn : str, optional
        Boolean/0-1 column: the account churned. Without it there is no churn
        model and no churn evidence.
    """

    id: str
    name: str | None = None
    features: dict[str, list[str]]
    categorical: list[str] = Field(default_factory=list)
    post_sale: list[str] = Field(default_factory=list)
    outcomes: list[OutcomeMetric] = Field(min_length=1)
    churn: str | None = None
    date: str | None = Field(
        default=None,
        description="When the account became a customer; enables the out-of-time holdout "
        "(the newest accounts are held out) used by retraining.",
    )
    trusted: list[str] = Field(
        default_factory=list,
        description="Feature columns exempt from the identifier/leakage screen (warned, kept).",
    )

    @field_validator("features")
    @classmethod
    def _known_groups(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, cols in v.items():
            if group not in FEATURE_GROUPS:
                raise ValueError(
                    f"unknown feature group '{group}'; use one of {', '.join(FEATURE_GROUPS)}"
                )
            if not cols:
                raise ValueError(f"feature group '{group}' is empty; list its columns or remove it")
        if not any(v.values()):
            raise ValueError("no targetable feature columns; list at least one under columns.features")
        return v

    @model_validator(mode="after")
    def _roles_do_not_overlap(self) -> ColumnsConfig:
        seen: dict[str, str] = {}

        def claim(col: str, role: str) -> None:
            if col in seen and seen[col] != role:
                raise ValueError(
                    f"column '{col}' is given two roles ({seen[col]} and {role}); give it one"
                )
            seen[col] = role

        claim(self.id, "id")
        if self.date:
            claim(self.date, "date")
        if self.name:
            claim(self.name, "name")
        for group, cols in self.features.items():
            for c in cols:
                if c in seen and seen[c].startswith("feature"):
                    raise ValueError(f"feature column '{c}' is listed twice; keep it in one group")
                claim(c, f"feature:{group}")
        for c in self.post_sale:
            claim(c, "post_sale")
        for m in self.outcomes:
            claim(m.column, "outcome")
        if self.churn:
            # churn may also be an outcome (retention) but never a feature
            if self.churn in seen and seen[self.churn] not in ("outcome",):
                raise ValueError(
                    f"churn column '{self.churn}' is also a {seen[self.churn]} column; "
                    "an outcome can never be a feature"
                )
        for c in self.categorical:
            if not seen.get(c, "").startswith("feature"):
                raise ValueError(
                    f"columns.categorical names '{c}', which is not a feature column"
                )
        return self

    @property
    def feature_columns(self) -> list[str]:
        """All targetable columns, in config order."""
        return [c for cols in self.features.values() for c in cols]

    @property
    def feature_groups(self) -> dict[str, str]:
        """Map feature column -> its group."""
        return {c: g for g, cols in self.features.items() for c in cols}


class OpportunitiesConfig(_Strict):
    """A CRM opportunities export whose closed deals become each account's outcomes.

    The common shape of a Salesforce or HubSpot export: an accounts table (the
    features) plus an opportunities table (one row per deal). Each account gets
    ``n_opportunities``, ``n_closed`` (won + lost), ``n_won``, ``won_value``
    (sum of ``amount`` over won deals) and ``win_rate`` (won / closed; missing
    when nothing closed), and with ``product`` the same per product line, as
    ``<outcome>__<product>``. Use these names as ``columns.outcomes``.

    Attributes
    ----------
    path : str
        CSV or Parquet file, relative to the project root.
    account : str
        Column naming the account; its values match ``columns.id`` of the accounts.
    stage : str
        Column with the deal stage.
    won, lost : list of str
        Stage values meaning won and lost; other stages (open deals) count only
        in ``n_opportunities``.
    amount : str, optional
        Deal value column (summed over won deals into ``won_value``).
    date : str, optional
        Deal date column (e.g. the close date), needed by ``after`` / ``before``.
    after, before : str, optional
        ISO dates: only deals dated on/after ``after`` and before ``before``
        count. Set ``after`` to the date the features were captured so the
        outcomes are measured after the features, never before.
    product : str, optional
        Product-line column: adds per-product outcomes for a cross-product ICP.
    """

    path: str
    account: str
    stage: str
    won: list[str] = Field(min_length=1)
    lost: list[str] = Field(min_length=1)
    amount: str | None = None
    date: str | None = None
    after: str | None = None
    before: str | None = None
    product: str | None = None

    @model_validator(mode="after")
    def _check(self) -> OpportunitiesConfig:
        both = set(self.won) & set(self.lost)
        if both:
            raise ValueError(f"stage value(s) {sorted(both)} are listed as both won and lost")
        if (self.after or self.before) and not self.date:
            raise ValueError("data.opportunities.after/before need data.opportunities.date")
        for key in ("after", "before"):
            v = getattr(self, key)
            if v is not None:
                try:
                    _dt.date.fromisoformat(v)
                except ValueError:
                    raise ValueError(f"data.opportunities.{key} '{v}' is not a date; "
                                     "write it as YYYY-MM-DD") from None
        return self


#: the number formats ``data.number_format`` accepts (see :data:`icpml.schema.NUMBER_FORMATS`)
NUMBER_FORMAT_NAMES = ("1,234.5", "1.234,5", "1 234,5", "1 234.5", "1'234.5", "1234.5", "1234,5")

#: named builders in :mod:`icpml.datasets` for data that config alone cannot shape
ADAPTERS = ("olist_sellers", "olist_mql_conversion", "telco_accounts", "maven_accounts")


class DataConfig(_Strict):
    """Where the accounts come from.

    Attributes
    ----------
    path : str, optional
        CSV or Parquet file (or, with ``adapter``, the folder the adapter
        reads), relative to the project root. ``icpml demo`` generates its own
        data and leaves this empty.
    opportunities : OpportunitiesConfig, optional
        A CRM opportunities export turned into per-account outcomes.
    adapter : str, optional
        A named builder from :mod:`icpml.datasets` for a dataset whose outcomes
        need more than a join (e.g. Olist sales in a window after the deal).
    options : dict
        Keyword arguments for the adapter (e.g. ``window_days: 90``).
    number_format : dict
        How numbers are written in text columns, when detection cannot tell: column (or
        ``"*"`` for every column) -> an example of the format: ``"1,234.5"``, ``"1.234,5"``,
        ``"1 234,5"``, ``"1 234.5"``, ``"1'234.5"``, ``"1234.5"`` or ``"1234,5"``. Without it
        each column's format is detected from its values (see :mod:`icpml.schema`).
    """

    path: str | None = None
    opportunities: OpportunitiesConfig | None = None
    adapter: Literal[ADAPTERS] | None = None  # type: ignore[valid-type]
    options: dict[str, Any] = Field(default_factory=dict)
    number_format: dict[str, Literal[NUMBER_FORMAT_NAMES]] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Column (or '*') -> number format, e.g. {employees: '1.234,5'}.",
    )

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if (self.adapter or self.opportunities) and not self.path:
            raise ValueError("data.path is needed with data.adapter or data.opportunities")
        if self.options and not self.adapter:
            raise ValueError("data.options only apply to a data.adapter; remove them or set one")
        return self


class CohortsConfig(_Strict):
    """Best and worst cohort definition: top/bottom quantiles of the value score."""

    best_quantile: float = Field(default=0.25, gt=0, lt=0.5)
    worst_quantile: float = Field(default=0.25, gt=0, lt=0.5)
    min_per_cohort: int = Field(
        default=10,
        ge=2,
        description="Fewest accounts a cohort may hold before the run refuses to model it.",
    )


class ModelsConfig(_Strict):
    """Classifier settings shared by the fit and churn models.

    Both are gradient-boosted trees (scikit-learn ``HistGradientBoostingClassifier``)
    on one-hot encoded categories, which ``shap.TreeExplainer`` explains exactly.
    """

    seed: int = 42
    holdout_size: float = Field(default=0.3, gt=0.05, lt=0.6)
    selection_size: float = Field(
        default=0.25,
        gt=0.05,
        lt=0.5,
        description="Share of the non-held-out rows kept aside to choose criteria on.",
    )
    cv_folds: int = Field(default=5, ge=2, le=20)
    max_iter: int = Field(default=150, ge=10)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    max_leaf_nodes: int = Field(default=15, ge=2)
    min_samples_leaf: int = Field(default=20, ge=1)
    l2_regularization: float = Field(default=1.0, ge=0)
    churn_uses_post_sale: bool = Field(
        default=False,
        description="Let the churn model also read post-sale columns (prospects have none, so "
        "leave this off when the churn risk of prospects matters).",
    )
    leakage_auc: float = Field(
        default=0.97,
        gt=0.5,
        le=1.0,
        description="A feature whose own best-vs-worst AUC reaches this is a leakage suspect.",
    )
    min_category_frequency: int = Field(
        default=5, ge=1, description="Rarer categories are pooled as 'infrequent'."
    )


class CriteriaConfig(_Strict):
    """Settings of the SHAP -> criteria stage (see :mod:`icpml.criteria`)."""

    top_features: int = Field(default=8, ge=1)
    max_icp_criteria: int = Field(default=4, ge=1)
    max_anti_criteria: int = Field(default=4, ge=0)
    min_support: float = Field(
        default=0.03, gt=0, lt=1, description="Smallest share of accounts a criterion may cover."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="False discovery rate (BH).")
    min_gain: float = Field(
        default=0.01, ge=0, description="Smallest F1 gain on the selection split to add a criterion."
    )
    max_wrongly_excluded: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="An exclusion may drop at most this share of best-cohort accounts.",
    )
    min_exclusion_worst_lift: float = Field(
        default=2.0,
        ge=1.0,
        description="An exclusion's accounts must be in the worst cohort this many times as often as average.",
    )
    n_bootstrap: int = Field(default=500, ge=50)
    stability_resamples: int = Field(
        default=8, ge=0, description="Bootstrap refits to measure criteria stability (0 = skip)."
    )
    min_stability: float = Field(
        default=0.6, ge=0, le=1,
        description="A criterion reappearing in fewer resamples than this is flagged unstable.",
    )


class TrackingConfig(_Strict):
    """MLflow settings.

    ``uri`` defaults to ``sqlite:///<project>/mlruns/mlflow.db`` with artifacts
    under ``<project>/mlruns/artifacts``; the ``MLFLOW_TRACKING_URI``
    environment variable, then this key, override it.
    """

    uri: str | None = None
    experiment: str = "icpml"
    fit_model_name: str = "icp-fit"
    churn_model_name: str = "icp-churn"


class RetrainConfig(_Strict):
    """The promotion gate of ``icpml retrain`` (challenger vs champion on the same fresh rows)."""

    max_auc_drop: float = Field(
        default=0.01, ge=0, description="Challenger fit AUC may trail the champion's by at most this."
    )
    max_lift_drop: float = Field(
        default=0.0,
        ge=0,
        description="Challenger ICP lift interval's lower bound may trail the champion's by at most this.",
    )
    alert_auc: float = Field(
        default=0.6, gt=0, lt=1,
        description="Champion fit AUC on fresh data below this raises an alert (exit code 4).",
    )


class ReportConfig(_Strict):
    """Where reports go (relative to the project root)."""

    dir: str = "reports"

    @field_validator("dir")
    @classmethod
    def _inside_project(cls, v: str) -> str:
        p = Path(v).expanduser()
        if not p.is_absolute() and ".." in p.parts:
            raise ValueError(f"report.dir '{v}' leaves the project folder; use a folder inside "
                             "the project or an explicit absolute path")
        return v
    sample_accounts_per_tier: int = Field(default=5, ge=0)


class Config(_Strict):
    """One icpml run. Load it with :func:`load_config`.

    Examples
    --------
    >>> from icpml import demo_config
    >>> cfg = demo_config()
    >>> cfg.cohorts.best_quantile
    0.25
    """

    name: str = "icpml"
    columns: ColumnsConfig
    data: DataConfig = DataConfig()
    cohorts: CohortsConfig = CohortsConfig()
    models: ModelsConfig = ModelsConfig()
    criteria: CriteriaConfig = CriteriaConfig()
    tracking: TrackingConfig = TrackingConfig()
    report: ReportConfig = ReportConfig()
    retrain: RetrainConfig = RetrainConfig()
    products: dict[str, list[OutcomeMetric]] = Field(
        default_factory=dict,
        description="Product line -> its outcomes, for one ICP per product (icpml products).",
    )
    project_root: Path | None = Field(
        default=None,
        description="Filled by load_config; relative paths resolve from here.",
    )

    @model_validator(mode="after")
    def _check_number_format(self) -> Config:
        cols = self.columns
        known = {"*", *cols.feature_columns, *cols.post_sale, *(m.column for m in cols.outcomes),
                 *(m.column for ms in self.products.values() for m in ms)}
        for c in self.data.number_format:
            if c not in known:
                raise ValueError(f"data.number_format names '{c}', which is not a feature, post-sale "
                                 "or outcome column; fix the name or use '*' for every column")
        return self

    @model_validator(mode="after")
    def _check_products(self) -> Config:
        targetable = {self.columns.id, *self.columns.feature_columns}
        for product, outcomes in self.products.items():
            if not outcomes:
                raise ValueError(f"products.{product} lists no outcome; give it at least one")
            for m in outcomes:
                if m.column in targetable:
                    raise ValueError(f"products.{product} uses '{m.column}', which is the id or a "
                                     "feature; an outcome can never be a feature")
        return self

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """Resolve ``path`` against the project root (absolute paths pass through)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        root = self.project_root or find_project_root()
        return (root / p).resolve()

    def to_dict(self) -> dict:
        """The resolved config as plain data (logged with every run)."""
        d = self.model_dump(mode="json")
        d["project_root"] = str(self.project_root) if self.project_root else None
        return d


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest ancestor of ``start`` (default: cwd) holding a project marker.

    ``ICPML_PROJECT_ROOT`` wins when set. Markers: ``pyproject.toml``, ``.git``,
    ``icpml.yaml`` or ``.icpml``. Falls back to ``start`` itself.
    """
    env = os.environ.get("ICPML_PROJECT_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(start or Path.cwd()).expanduser().resolve()
    if here.is_file():
        here = here.parent
    for d in (here, *here.parents):
        if any((d / m).exists() for m in _ROOT_MARKERS):
            return d
    return here


def _format_validation_error(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "required key is missing"
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def config_from_dict(data: dict, *, project_root: Path | None = None, source: str = "config") -> Config:
    """Validate a mapping into a :class:`Config`, raising :class:`ConfigError` on problems."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        cfg = Config.model_validate({**data, "project_root": project_root})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load and validate a YAML config.

    Parameters
    ----------
    path : path-like
        The YAML file.

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, or fails validation. The message
        names every offending key.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist; pass --config with a YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}; fix the syntax") from None
    if data is None:
        raise ConfigError(f"{p}: the file is empty; start from configs/demo.yaml")
    root = find_project_root(p.resolve().parent)
    return config_from_dict(data, project_root=root, source=str(p))


def demo_config(project_root: Path | None = None) -> Config:
    """The config of ``icpml demo``: the synthetic accounts of :mod:`icpml.synthetic`."""
    from importlib import resources

    text = resources.files("icpml").joinpath("configs/demo.yaml").read_text(encoding="utf-8")
    root = project_root or find_project_root()
    return config_from_dict(yaml.safe_load(text), project_root=root, source="demo.yaml")
