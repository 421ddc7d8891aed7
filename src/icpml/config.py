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

from icpml.adapters import ADAPTERS
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
    "config_from_dict",
    "find_project_root",
    "demo_config",
    "model_slug",
    "format_validation_error",
]

#: Most distinct values ``columns.product`` may have (more looks like an identifier).
MAX_PRODUCT_LINES = 50

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

    Parameters
    ----------
    column : str
        Column holding the metric (ARR, NRR, tenure, NPS, support cost...).
    direction : {"higher", "lower"}, default "higher"
        Whether a higher value means a better customer. Support cost is "lower".
    weight : float, default 1.0
        Weight (> 0) of this metric's percentile rank in the composite score.

    Raises
    ------
    pydantic.ValidationError
        On a wrong type or value; :func:`load_config` turns it into a one-line
        :class:`~icpml.errors.ConfigError`.
    """

    column: str
    direction: Literal["higher", "lower"] = "higher"
    weight: float = Field(default=1.0, gt=0)


class ColumnsConfig(_Strict):
    """Column roles. Only ``features`` may ever become ICP criteria.

    Parameters
    ----------
    id : str
        Unique account identifier.
    name : str, optional
        Human-readable account name, used in reports only.
    features : dict of str to list of str
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
        Metrics combined into the value score that defines best and worst (at
        least one).
    churn : str, optional
        Boolean/0-1 column: the account churned. Without it there is no churn
        model and no churn evidence.
    date : str, optional
        When the account became a customer; enables the out-of-time holdout (the
        newest accounts are held out) used by retraining.
    trusted : list of str
        Feature columns known before the sale even though they look like outcomes
        (a dominant, named "stage" or "score" column); the leakage screen keeps them,
        with a warning. Each must be a feature column.
    product : str, optional
        Product-line column, for a table with one row per customer and product line
        (the id then repeats across products; an (id, product) pair may not). Discovery
        gives one ICP per product value, each from that product's rows (value score and
        cohorts within the product), and scores every account against every product
        (see :func:`icpml.products.discover_products`). Needs 2 to
        :data:`MAX_PRODUCT_LINES` values; it is neither the id, a feature nor an outcome.

    Raises
    ------
    pydantic.ValidationError
        An unknown or empty feature group, a column given two roles, or a
        ``categorical`` / ``trusted`` entry that is not a feature column.
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
        description="Feature columns the user vouches for as known before the sale: the "
        "identifier/leakage screen still warns about them but keeps them (see "
        "icpml.features.screen_columns).",
    )
    product: str | None = Field(
        default=None,
        description="Product-line column (one row per customer and product): one ICP per "
        "product value, every account scored against every product.",
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
        if self.product:
            claim(self.product, "product")
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
            if self.churn == self.product:
                raise ValueError(f"churn column '{self.churn}' is also the product column; "
                                 "give columns.product its own column")
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
        for c in self.trusted:
            if not seen.get(c, "").startswith("feature"):
                raise ValueError(
                    f"columns.trusted names '{c}', which is not a feature column; "
                    "list it under columns.features or remove it from columns.trusted"
                )
        return self

    @property
    def feature_columns(self) -> list[str]:
        """All targetable columns, in config order.

        Returns
        -------
        list of str
            The columns of every ``features`` group, group by group.
        """
        return [c for cols in self.features.values() for c in cols]

    @property
    def feature_groups(self) -> dict[str, str]:
        """Map each feature column to its group.

        Returns
        -------
        dict of str to str
            Feature column -> group name (e.g. ``"firmographic"``).
        """
        return {c: g for g, cols in self.features.items() for c in cols}


class OpportunitiesConfig(_Strict):
    """A CRM opportunities export whose closed deals become each account's outcomes.

    The common shape of a Salesforce or HubSpot export: an accounts table (the
    features) plus an opportunities table (one row per deal). Each account gets
    ``n_opportunities``, ``n_closed`` (won + lost), ``n_won``, ``won_value``
    (sum of ``amount`` over won deals) and ``win_rate`` (won / closed; missing
    when nothing closed), and with ``product`` the same per product line, as
    ``<outcome>__<product>``. Use these names as ``columns.outcomes``.

    Parameters
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

    Raises
    ------
    pydantic.ValidationError
        A stage listed as both won and lost, ``after`` / ``before`` without
        ``date``, or a date not written as YYYY-MM-DD.
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

#: named builders for data that config alone cannot shape (the one registry: icpml.adapters)
ADAPTER_NAMES = tuple(ADAPTERS)


class DataConfig(_Strict):
    """Where the accounts come from.

    Parameters
    ----------
    path : str, optional
        CSV or Parquet file (or, with ``adapter``, the folder the adapter
        reads), relative to the project root. ``icpml demo`` generates its own
        data and leaves this empty.
    opportunities : OpportunitiesConfig, optional
        A CRM opportunities export turned into per-account outcomes.
    adapter : str, optional
        A named builder from :data:`icpml.adapters.ADAPTERS` for a dataset whose outcomes
        need more than a join (e.g. Olist sales in a window after the deal).
    options : dict
        Keyword arguments for the adapter (e.g. ``window_days: 90``).
    number_format : dict
        How numbers are written in text columns, when detection cannot tell: column (or
        ``"*"`` for every column) -> an example of the format: ``"1,234.5"``, ``"1.234,5"``,
        ``"1 234,5"``, ``"1 234.5"``, ``"1'234.5"``, ``"1234.5"`` or ``"1234,5"``. Without it
        each column's format is detected from its values (see :mod:`icpml.schema`).

    Raises
    ------
    pydantic.ValidationError
        ``adapter`` or ``opportunities`` without ``path``, or ``options`` without
        ``adapter``.
    """

    path: str | None = None
    opportunities: OpportunitiesConfig | None = None
    adapter: Literal[ADAPTER_NAMES] | None = None  # type: ignore[valid-type]
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
    """Best and worst cohort definition: top/bottom quantiles of the value score.

    Parameters
    ----------
    best_quantile : float, default 0.25
        Share (0-0.5) of accounts with the highest value score that form the best
        cohort.
    worst_quantile : float, default 0.25
        Share (0-0.5) with the lowest value score that form the worst cohort.
    min_per_cohort : int, default 10
        Fewest accounts a cohort may hold before the run refuses to model it.
    """

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

    Parameters
    ----------
    seed : int, default 42
        Seed of every split, model and bootstrap: the same data and config give
        the same run.
    holdout_size : float, default 0.3
        Share of accounts held out for the evidence (never seen by the models or
        the criteria search).
    selection_size : float, default 0.25
        Share of the non-held-out rows kept aside to choose criteria on.
    cv_folds : int, default 5
        Folds of the cross-validated AUC reported for each model.
    max_iter : int, default 150
        Boosting iterations.
    learning_rate : float, default 0.05
        Shrinkage of each boosting step.
    max_leaf_nodes : int, default 15
        Leaves per tree.
    min_samples_leaf : int, default 20
        Fewest accounts in a leaf.
    l2_regularization : float, default 1.0
        L2 penalty on leaf values.
    churn_uses_post_sale : bool, default False
        Let the churn model also read post-sale columns (prospects have none, so
        leave this off when the churn risk of prospects matters).
    leakage_auc : float, default 0.97
        A feature whose own best-vs-worst AUC reaches this is a leakage suspect.
    min_category_frequency : int, default 5
        Rarer categories are pooled as 'infrequent'.
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
    """Settings of the SHAP -> criteria stage (see :mod:`icpml.criteria`).

    Parameters
    ----------
    top_features : int, default 8
        Columns with the largest mean positive (and, separately, negative) SHAP
        values that propose candidates.
    max_icp_criteria : int, default 4
        Most inclusion criteria in the ICP.
    max_anti_criteria : int, default 4
        Most exclusion criteria in the anti-ICP.
    min_support_share : float, default 0.03
        Smallest share (0-1) of accounts a criterion may cover.
    alpha : float, default 0.05
        False discovery rate of the Benjamini-Hochberg correction.
    min_gain : float, default 0.01
        Smallest F1 gain on the selection split to add a criterion.
    max_wrongly_excluded : float, default 0.05
        An exclusion may drop at most this share of best-cohort accounts.
    min_exclusion_worst_lift : float, default 2.0
        An exclusion's accounts must be in the worst cohort this many times as
        often as average.
    n_bootstrap : int, default 500
        Bootstrap resamples of each lift interval.
    stability_resamples : int, default 8
        Most bootstrap refits to measure criteria stability (0 = skip).
    min_stability : float, default 0.6
        A criterion reappearing in fewer resamples than this share is flagged
        unstable.
    """

    top_features: int = Field(default=8, ge=1)
    max_icp_criteria: int = Field(default=4, ge=1)
    max_anti_criteria: int = Field(default=4, ge=0)
    min_support_share: float = Field(
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

    Left unset, ``experiment`` is the config's ``name`` and the registered models
    are ``<name>-fit`` and ``<name>-churn`` (the name with anything but letters,
    digits, ``.``, ``_`` and ``-`` turned into ``-``): two configs never share a
    model unless they set the same names on purpose. :class:`Config` fills them in.

    Parameters
    ----------
    uri : str, optional
        MLflow tracking URI.
    experiment : str, optional
        MLflow experiment name.
    fit_model_name, churn_model_name : str, optional
        Registered-model names of the fit and churn models (no ``/``, ``:`` or
        ``@``).

    Raises
    ------
    pydantic.ValidationError
        A model name that MLflow cannot register.
    """

    uri: str | None = None
    experiment: str | None = None
    fit_model_name: str | None = None
    churn_model_name: str | None = None

    @field_validator("fit_model_name", "churn_model_name")
    @classmethod
    def _registrable(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or "/" in v or ":" in v or "@" in v):
            raise ValueError(f"'{v}' cannot name a registered model; use letters, digits, "
                             "'.', '_' and '-' (no '/', ':' or '@')")
        return v


def model_slug(name: str) -> str:
    """Turn ``name`` into a registered-model prefix.

    Runs of other characters than letters, digits, ``.``, ``_`` and ``-`` become
    one ``-``, and leading / trailing ``-._`` are dropped.

    Parameters
    ----------
    name : str
        Any name, typically the config's ``name``.

    Returns
    -------
    str
        The slug; ``"icpml"`` when nothing is left.

    Examples
    --------
    >>> from icpml.config import model_slug
    >>> model_slug("Acme EU/2025")
    'Acme-EU-2025'
    """
    import re

    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-._")
    return slug or "icpml"


class RetrainConfig(_Strict):
    """The promotion gate of ``icpml retrain`` (challenger vs champion on the same fresh rows).

    Parameters
    ----------
    max_auc_drop : float, default 0.01
        Challenger fit AUC may trail the champion's by at most this (AUC points).
    max_lift_drop : float, default 0.0
        Challenger ICP lift interval's lower bound may trail the champion's by at
        most this (a ratio).
    alert_auc : float, default 0.6
        Champion fit AUC on fresh data below this raises an alert (exit code 4).
    """

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
    """Where reports go (relative to the project root).

    Parameters
    ----------
    dir : str, default "reports"
        Report folder, relative to the project root (``..`` may not leave it) or
        absolute.
    sample_accounts_per_tier : int, default 5
        Example accounts shown per tier in the report.

    Raises
    ------
    pydantic.ValidationError
        A relative ``dir`` that leaves the project folder.
    """

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
    """One icpml run. Load it with :func:`load_config` or :func:`config_from_dict`.

    Parameters
    ----------
    name : str, default "icpml"
        Run name; the default MLflow experiment and model names derive from it.
    columns : ColumnsConfig
        Column roles (the only required section).
    data : DataConfig
        Where the accounts come from.
    cohorts : CohortsConfig
        Best and worst cohort definition.
    models : ModelsConfig
        Classifier settings.
    criteria : CriteriaConfig
        Criteria search settings.
    tracking : TrackingConfig
        MLflow settings (unset names are filled from ``name``).
    report : ReportConfig
        Report folder.
    retrain : RetrainConfig
        Promotion gate of ``icpml retrain``.
    products : dict of str to list of OutcomeMetric
        Product line -> its outcomes, for one ICP per product (``icpml products``).
    project_root : pathlib.Path, optional
        Filled by :func:`load_config`; relative paths resolve from here.

    Raises
    ------
    pydantic.ValidationError
        Unknown keys (every section is strict) or invalid values; the loaders
        turn it into a one-line :class:`~icpml.errors.ConfigError`.

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

    @model_validator(mode="before")
    @classmethod
    def _tracking_defaults(cls, data: Any) -> Any:
        """Unset tracking names derive from the config's ``name`` (see :class:`TrackingConfig`)."""
        if not isinstance(data, dict):
            return data
        name = data.get("name") or "icpml"
        if not isinstance(name, str):
            return data  # the field validation names the problem
        tracking = data.get("tracking")
        if tracking is None:
            tracking = {}
        elif isinstance(tracking, TrackingConfig):
            tracking = tracking.model_dump(exclude_none=True)
        elif not isinstance(tracking, dict):
            return data
        defaults = {"experiment": name, "fit_model_name": f"{model_slug(name)}-fit",
                    "churn_model_name": f"{model_slug(name)}-churn"}
        filled = {**tracking, **{k: v for k, v in defaults.items() if tracking.get(k) is None}}
        return {**data, "tracking": filled}

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
        if self.products and self.columns.product:
            raise ValueError("products: (one outcome set per product) and columns.product (one row "
                             "per customer and product) are two ways to give product lines; keep one")
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
        """Resolve ``path`` against the project root (absolute paths pass through).

        Parameters
        ----------
        path : str or path-like
            A path from the config (``~`` is expanded).

        Returns
        -------
        pathlib.Path
            ``path`` itself when absolute, else ``project_root / path`` resolved
            (the project root is found from the working directory when unset).
        """
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        root = self.project_root or find_project_root()
        return (root / p).resolve()

    def to_dict(self) -> dict:
        """The resolved config as plain data (logged with every run).

        Returns
        -------
        dict
            JSON-ready values of every key, defaults included; ``project_root`` as a
            string or None.
        """
        d = self.model_dump(mode="json")
        d["project_root"] = str(self.project_root) if self.project_root else None
        return d


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """Find the nearest ancestor of ``start`` holding a project marker.

    ``ICPML_PROJECT_ROOT`` wins when set. Markers: ``pyproject.toml``, ``.git``,
    ``icpml.yaml`` or ``.icpml``.

    Parameters
    ----------
    start : str or path-like, optional
        Where to start looking; the working directory by default.

    Returns
    -------
    pathlib.Path
        The project root; ``start`` itself when no ancestor holds a marker.
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


#: the example shown when ``columns.features`` is not a mapping of group -> columns
_FEATURES_SHAPE = ("features are grouped; write them as a mapping of group -> columns, e.g. "
                   "features: {firmographic: [industry, employees], technographic: [crm]} "
                   f"(groups: {', '.join(FEATURE_GROUPS)})")

#: short names of the types a config value can have, for "expected ..., got ..."
_TYPE_WORDS = {"dict": "a mapping", "list": "a list", "str": "text", "int": "a whole number",
               "float": "a number", "bool": "true or false", "NoneType": "nothing"}


def _key_path(loc: tuple) -> str:
    """``('columns', 'outcomes', 0, 'weight')`` -> ``columns.outcomes.0.weight``."""
    return ".".join(str(part) for part in loc) or "(top level)"


def _got(value: Any) -> str:
    kind = _TYPE_WORDS.get(type(value).__name__, type(value).__name__)
    if isinstance(value, dict | list):
        return kind
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed where ``loc`` points (for spelling suggestions); [] if unknown."""
    import typing

    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = field.annotation
        # unwrap Optional[X], list[X], dict[str, X] down to a model, if there is one
        for _ in range(3):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            if isinstance(current, type) and issubclass(current, BaseModel) or not args:
                break
            current = args[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [k for k in current.model_fields if k != "project_root"]
    return []


def _plain_problem(e: dict, model: type[BaseModel] | None = None) -> str:
    """One pydantic error as ``key.path: what is wrong; how to fix it`` in plain words."""
    import difflib

    loc = tuple(e.get("loc", ()))
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    where = _key_path(loc)
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1]) if model is not None else []
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.75) if loc else []
        hint = f"did you mean '{near[0]}'?" if near else "remove it or check its spelling"
        if allowed and not near:
            hint += f" (allowed here: {', '.join(allowed)})"
        return f"{where}: unknown key; {hint}"
    if kind == "missing":
        return f"{where}: required key is missing; add it"
    if loc[-2:] == ("columns", "features") and kind in ("dict_type", "model_type"):
        return f"{where}: got {_got(value)}, but {_FEATURES_SHAPE}"
    if kind in ("model_type", "dict_type") and "outcomes" in loc and isinstance(value, str):
        return (f"{where}: expected a mapping, got {_got(value)}; write "
                f"{{column: {value}, direction: higher}}")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where}: expected a mapping of keys (key: value), got {_got(value)}"
    if kind == "list_type":
        one = f"; write [{value}] for one item" if isinstance(value, str) else ""
        return f"{where}: expected a list such as [a, b], got {_got(value)}{one}"
    if kind in ("string_type",):
        return f"{where}: expected text, got {_got(value)}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{where}: expected a whole number, got {_got(value)}"
    if kind in ("float_parsing", "float_type"):
        return f"{where}: expected a number, got {_got(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{where}: expected true or false, got {_got(value)}"
    if kind == "literal_error":
        return f"{where}: {value!r} is not allowed; use one of {ctx.get('expected', '')}"
    bounds = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}
    if kind in bounds:
        word, key = bounds[kind]
        return f"{where}: must be {word} {ctx.get(key)}, got {value!r}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"{where}: needs at least {n} item{'s' if n != 1 else ''}; list {'it' if n == 1 else 'them'}"
    if kind == "too_long":
        return f"{where}: holds too many items; keep at most {ctx.get('max_length')}"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return f"{where}: {ctx['error']}"
    msg = str(e.get("msg", "invalid value"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    msg = msg.replace("Input should be", "must be")
    return f"{where}: {msg}"


def format_validation_error(err: ValidationError, source: str,
                            model: type[BaseModel] | None = None) -> str:
    """Turn a pydantic ``ValidationError`` into one plain line.

    One clause per problem, each naming its key path and what to write instead; no
    pydantic wording ("Input should be a valid dictionary", "Value error, ...") reaches
    the user. One line, as every user error (several problems are ``; ``-separated).

    Parameters
    ----------
    err : pydantic.ValidationError
        The error to word.
    source : str
        What was validated (a file name), put first.
    model : type of pydantic.BaseModel, optional
        The model validated; lets an unknown key's message list the allowed keys.

    Returns
    -------
    str
        ``"source: key.path: fix; key.path: fix"``.
    """
    parts = dict.fromkeys(_plain_problem(e, model) for e in err.errors())
    return f"{source}: " + "; ".join(parts)


def _format_validation_error(err: ValidationError, source: str) -> str:
    return format_validation_error(err, source, Config)


def config_from_dict(data: dict, *, project_root: Path | None = None, source: str = "config") -> Config:
    """Validate an in-memory mapping into a :class:`Config`.

    The same validation as :func:`load_config`, for a config built in code or a
    notebook (the mapping has the layout of a YAML config file).

    Parameters
    ----------
    data : dict
        The config keys (``columns`` is required). Not modified.
    project_root : pathlib.Path, optional
        Where relative paths resolve from; found from the working directory when
        None.
    source : str, default "config"
        What to call the mapping in error messages.

    Returns
    -------
    Config
        The validated, frozen config.

    Raises
    ------
    ConfigError
        ``data`` is not a mapping, or a key is unknown or invalid; one line naming
        every offending key.

    Examples
    --------
    >>> from icpml.config import config_from_dict
    >>> cfg = config_from_dict({"name": "acme", "columns": {
    ...     "id": "account_id", "features": {"firmographic": ["industry", "employees"]},
    ...     "outcomes": [{"column": "arr"}]}})
    >>> cfg.tracking.fit_model_name, cfg.models.seed
    ('acme-fit', 42)
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level")
    try:
        cfg = Config.model_validate({**data, "project_root": project_root})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load and validate a YAML config.

    The project root (for relative paths such as ``data.path`` and
    ``report.dir``) is the nearest ancestor of the file holding a project
    marker (see :func:`find_project_root`).

    Parameters
    ----------
    path : str or path-like
        The YAML file (``~`` is expanded).

    Returns
    -------
    Config
        The validated, frozen config with ``project_root`` set.

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, is empty, or fails validation. The
        message names every offending key, on one line.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from icpml import load_config
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / ".icpml").write_text("")
    >>> _ = (folder / "acme.yaml").write_text('''
    ... name: acme
    ... columns:
    ...   id: account_id
    ...   features: {firmographic: [industry, employees]}
    ...   outcomes: [{column: arr}]
    ... ''')
    >>> cfg = load_config(folder / "acme.yaml")
    >>> cfg.columns.feature_columns
    ['industry', 'employees']
    >>> import shutil; shutil.rmtree(folder)
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
    """The config of ``icpml demo``: the synthetic accounts of :mod:`icpml.synthetic`.

    Parameters
    ----------
    project_root : pathlib.Path, optional
        Where relative paths (reports, tracking) resolve from; found from the
        working directory when None.

    Returns
    -------
    Config
        The packaged ``configs/demo.yaml``, validated; it fits
        :func:`icpml.synthetic.make_accounts`.

    Examples
    --------
    >>> from icpml import demo_config
    >>> demo_config().columns.id
    'account_id'
    """
    from importlib import resources

    text = resources.files("icpml").joinpath("configs/demo.yaml").read_text(encoding="utf-8")
    root = project_root or find_project_root()
    return config_from_dict(yaml.safe_load(text), project_root=root, source="demo.yaml")
