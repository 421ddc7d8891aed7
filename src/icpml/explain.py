"""Exact tree SHAP values, grouped back to business columns.

``shap.TreeExplainer`` computes exact SHAP values (interventional-free, "tree
path dependent") for the gradient-boosted trees of the fit and churn models, in
log-odds. The preprocessing one-hot encodes each categorical column on its own,
so the SHAP values of its one-hot outputs are *summed* back to the business
column: the contribution of "industry" to an account's score is the sum over its
industry indicator columns. Summing keeps additivity:

    sum over columns of SHAP + base value == model raw output (log-odds)

:func:`explain` checks this identity on every call and raises if it is off by
more than ``tol`` (1e-6 by default), so a wrong explanation can never reach the
criteria silently.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from icpml.features import business_column_map
from icpml.models import TrainedModel, openmp_threads

__all__ = ["explain", "GroupedShap", "AdditivityError"]


class AdditivityError(AssertionError):
    """SHAP values do not add up to the model's output: the explanation is wrong."""


@dataclass
class GroupedShap:
    """SHAP values of one model on some accounts, grouped per business column.

    Named apart from ``shap.Explanation``, which holds per-encoded-feature values: here the
    one-hot columns of a category are summed back into one business column.

    Parameters
    ----------
    values : pandas.DataFrame
        Accounts x business columns, log-odds contributions (the one-hot columns
        of a category summed into their business column).
    base_value : float
        The explainer's expected value (log-odds).
    raw_output : numpy.ndarray
        The model's raw output (log-odds) for each account, shape ``(n,)``.
    data : pandas.DataFrame
        The business-column values of the explained accounts (for dependence plots).
    max_additivity_error : float
        ``max |sum(values) + base_value - raw_output|`` over the accounts.
    category_codes : dict
        A declared cache, filled by the criteria stage: column -> (row codes, categories)
        of ``data[column]`` (``pd.factorize``), so that each column is hashed once per
        explanation; a subset of the rows carries the matching codes. Not compared.
    """

    values: pd.DataFrame
    base_value: float
    raw_output: np.ndarray
    data: pd.DataFrame
    max_additivity_error: float
    category_codes: dict = field(default_factory=dict, repr=False, compare=False)

    def __setstate__(self, state: dict) -> None:
        """Unpickle; an explanation pickled when the codes were stashed as ``_codes`` gets them."""
        state.setdefault("category_codes", state.pop("_codes", {}))
        self.__dict__.update(state)

    def importance(self) -> pd.Series:
        """Mean |SHAP| per business column, largest first.

        Returns
        -------
        pandas.Series
            Named ``mean_abs_shap``, indexed by column (log-odds).
        """
        imp = self.values.abs().mean().sort_values(ascending=False, kind="stable")
        return imp.rename("mean_abs_shap")

    def signed_importance(self) -> pd.DataFrame:
        """Mean positive and mean negative contribution per column (ICP vs anti-ICP side).

        Returns
        -------
        pandas.DataFrame
            Indexed by column, columns ``positive`` (mean of the positive parts),
            ``negative`` (mean of the negative parts, <= 0) and ``mean_abs``
            (log-odds), sorted by ``mean_abs`` descending.
        """
        v = self.values
        return pd.DataFrame({
            "positive": v.clip(lower=0).mean(),
            "negative": v.clip(upper=0).mean(),
            "mean_abs": v.abs().mean(),
        }).sort_values("mean_abs", ascending=False, kind="stable")


def explain(model: TrainedModel, X: pd.DataFrame, *, tol: float = 1e-6) -> GroupedShap:
    """Exact SHAP values of ``model`` on accounts ``X``, grouped to business columns.

    TreeSHAP (Lundberg et al. 2020, "From local explanations to global
    understanding with explainable AI for trees"), via ``shap.TreeExplainer`` on
    the boosted trees, in log-odds. The contributions of a category's one-hot
    columns are summed into the business column, and additivity (values + base =
    raw output) is checked for every account.

    Parameters
    ----------
    model : TrainedModel
        The fitted model.
    X : pandas.DataFrame
        Coerced accounts holding ``model.columns``, one per row. Not modified.
    tol : float, default 1e-6
        Largest additivity error accepted (log-odds).

    Returns
    -------
    GroupedShap
        ``values`` of shape ``(len(X), len(model.columns))``, same index as ``X``.

    Raises
    ------
    AdditivityError
        If SHAP values plus the base value differ from the model's raw output by
        more than ``tol`` for any account.
    """
    with warnings.catch_warnings():
        # shap imports tqdm.auto, which in a notebook without ipywidgets warns "IProgress not
        # found" in red; icpml shows no shap progress bar, so the warning is only noise
        warnings.filterwarnings("ignore", message="IProgress not found")
        import shap  # here, not at the top: scoring without --explain never pays its import (~2.5 s)

    pre = model.pipeline.named_steps["prep"]
    clf = model.pipeline.named_steps["clf"]
    Xb = X[model.columns]
    Z = pre.transform(Xb)
    explainer = shap.TreeExplainer(clf)
    sv = np.asarray(explainer.shap_values(Z, check_additivity=False), dtype=float)
    if sv.ndim == 3:  # (n, features, classes) in some shap versions for binary models
        sv = sv[..., 1]
    base = float(np.ravel(explainer.expected_value)[-1])
    with openmp_threads():  # one thread: spinning OpenMP threads on a busy machine cost 10x
        raw = np.asarray(clf.decision_function(Z), dtype=float).ravel()
    owner = business_column_map(pre)
    grouped = pd.DataFrame(sv, index=Xb.index, columns=owner).T.groupby(level=0, sort=False).sum().T
    grouped = grouped[[c for c in model.columns if c in grouped.columns]]
    err = float(np.max(np.abs(grouped.to_numpy().sum(axis=1) + base - raw))) if len(raw) else 0.0
    if err > tol:
        raise AdditivityError(
            f"{model.name} model: SHAP values miss the model output by {err:.3g} log-odds "
            f"(tolerance {tol}); the explanation cannot be trusted"
        )
    return GroupedShap(values=grouped, base_value=base, raw_output=raw, data=Xb.copy(),
                       max_additivity_error=err)
