"""Figure builders for the report and notebooks.

Every function returns a matplotlib ``Figure``, accepts ``ax=None`` to draw into
an existing axes, and never calls ``show()``. Colours come from the Okabe-Ito
palette (distinguishable with the common colour-vision deficiencies); figures
are sized for print (7 x 4 inches) with labelled axes.

Colours mean one thing in every chart: :data:`TOWARDS_BEST` (blue) is "towards
the best cohort / lower churn", :data:`TOWARDS_WORST` (vermillion) is "towards
the worst cohort / higher churn". Every chart also says its direction in words
(axis labels and legends), so it reads right in black and white.

User text (column names, category values, criteria) is drawn literally: a ``$``
in ``"$1M-$5M"`` is a dollar sign, never the start of matplotlib math text
(every text the figure carries, except the numeric tick labels matplotlib
formats itself, has ``parse_math=False``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import LogFormatter, ScalarFormatter

from icpml.criteria import Criterion
from icpml.explain import GroupedShap

__all__ = ["shap_summary", "cohort_contrast_plot", "dependence_plot", "calibration_plot",
           "gains_plot", "tier_plot", "OKABE_ITO", "TOWARDS_BEST", "TOWARDS_WORST"]

#: Okabe-Ito colour-blind-safe palette.
OKABE_ITO = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
             "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000",
             "grey": "#999999"}
#: Towards the best cohort / lower churn, and towards the worst cohort / higher churn.
TOWARDS_BEST, TOWARDS_WORST = OKABE_ITO["blue"], OKABE_ITO["vermillion"]
POS, NEG = TOWARDS_BEST, TOWARDS_WORST  # older names


class NotebookFigure(Figure):
    """A matplotlib ``Figure`` that shows itself in Jupyter without pyplot.

    Figures here are built without pyplot (no global state, safe in threads), so
    IPython's pyplot hook never registers them; ``_repr_png_`` makes a cell that ends
    with one display the image (JupyterLab, executed notebooks, nbconvert).
    """

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=self.dpi, facecolor="white")
        return buf.getvalue()


def _axes(ax: Axes | None, size=(7, 4)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = NotebookFigure(figsize=size, dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _literal(*axes: Axes) -> None:
    """Draw every text of ``axes`` as typed: no math-text parsing of ``$``.

    Titles, axis labels, legends and categorical tick labels carry user text;
    the numeric tick labels and offsets that matplotlib formats itself (``10^2``
    on a log axis is math text) are left as they are.
    """
    for ax in axes:
        formatted = set()
        for axis in (ax.xaxis, ax.yaxis):
            if isinstance(axis.get_major_formatter(), ScalarFormatter | LogFormatter):
                formatted.add(id(axis.offsetText))
                formatted.update(id(t) for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                                 for t in (tick.label1, tick.label2))
        for text in ax.findobj(Text):
            if id(text) not in formatted:
                text.set_parse_math(False)


def shap_summary(expl: GroupedShap, *, title: str = "What moves the fit score",
                 top: int = 12, target: str | None = None, ax: Axes | None = None) -> Figure:
    """Mean positive and mean negative SHAP contribution per business column.

    ``target`` is ``"fit"`` (positive SHAP moves an account towards the best
    cohort) or ``"churn"`` (positive SHAP raises churn risk, towards worst); by
    default ``"churn"`` when the title mentions churn. Bars towards best / lower
    churn are blue, towards worst / higher churn vermillion, on both charts.

    Parameters
    ----------
    expl : GroupedShap
        SHAP values of one model (:func:`icpml.explain.explain`).
    title : str, default "What moves the fit score"
        Figure title.
    top : int, default 12
        Columns shown, by mean |SHAP|.
    target : {"fit", "churn"}, optional
        Which model the values explain (see above).
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (that of ``ax`` when given); x axis in log-odds.
    """
    fig, ax = _axes(ax)
    churn = ("churn" in title.lower()) if target is None else target == "churn"
    imp = expl.signed_importance().head(top).iloc[::-1]
    y = np.arange(len(imp))
    if churn:
        ax.barh(y, imp["positive"], color=TOWARDS_WORST, label="raises churn risk (towards worst)")
        ax.barh(y, imp["negative"], color=TOWARDS_BEST, label="lowers churn risk (towards best)")
        ax.set_xlabel("mean SHAP contribution to churn risk (log-odds)\n"
                      "right = more churn (towards worst), left = less churn", fontsize=9)
    else:
        ax.barh(y, imp["positive"], color=TOWARDS_BEST, label="pushes towards best")
        ax.barh(y, imp["negative"], color=TOWARDS_WORST, label="pushes towards worst")
        ax.set_xlabel("mean SHAP contribution to the fit score (log-odds)\n"
                      "right = towards best, left = towards worst", fontsize=9)
    ax.set_yticks(y, [str(v) for v in imp.index])
    ax.axvline(0, color=OKABE_ITO["black"], lw=0.8)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    _literal(ax)
    return fig


def cohort_contrast_plot(contrast: pd.DataFrame, *, alpha: float = 0.05,
                         ax: Axes | None = None) -> Figure:
    """Effect size of each feature between best and worst cohorts; significant ones solid.

    Cliff's δ (numeric columns) is signed: above 0 the best cohort has the higher
    values (blue), below 0 the worst cohort does (vermillion). Cramér's V
    (categorical columns) has no direction (black). Not significant: grey.

    Parameters
    ----------
    contrast : pandas.DataFrame
        From :func:`icpml.cohorts.cohort_contrast`. Not modified.
    alpha : float, default 0.05
        A feature is significant when its BH q-value is below this.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The 15 largest effects, one bar each.
    """
    fig, ax = _axes(ax)
    c = contrast.copy()
    c["abs"] = c["effect"].abs()
    c = c.sort_values("abs", kind="stable").tail(15)
    y = np.arange(len(c))
    sig = (c["q_value"] < alpha).to_numpy()
    cramer = c["effect_measure"].astype("string").str.startswith("Cram").fillna(False).to_numpy()
    effect = c["effect"].fillna(0).to_numpy(dtype=float)
    colors = [OKABE_ITO["grey"] if not s else OKABE_ITO["black"] if v
              else TOWARDS_BEST if e >= 0 else TOWARDS_WORST
              for s, v, e in zip(sig, cramer, effect, strict=True)]
    ax.barh(y, effect, color=colors)
    ax.set_yticks(y, [f"{f} ({'V' if v else 'δ'})"
                      for f, v in zip(c["feature"], cramer, strict=True)])
    ax.axvline(0, color=OKABE_ITO["black"], lw=0.8)
    ax.set_xlabel("effect size. Cliff's δ: > 0 higher in the best cohort, < 0 higher in the worst\n"
                  "Cramér's V: how much the category mix differs (no direction)", fontsize=9)
    ax.legend(handles=[Patch(color=TOWARDS_BEST, label="higher in best (δ)"),
                       Patch(color=TOWARDS_WORST, label="higher in worst (δ)"),
                       Patch(color=OKABE_ITO["black"], label="mix differs (V)"),
                       Patch(color=OKABE_ITO["grey"], label=f"not significant (q ≥ {alpha})")],
              loc="lower right", fontsize=7)
    ax.set_title(f"Best vs worst cohort (coloured: BH q < {alpha})")
    _literal(ax)
    return fig


def dependence_plot(expl: GroupedShap, column: str, criterion: Criterion | None = None, *,
                    ax: Axes | None = None) -> Figure:
    """SHAP value against the column's value, with the criterion's thresholds drawn.

    Numeric columns: a scatter (points above 0 blue, towards best; below 0
    vermillion, towards worst) with the bounds as dashed black lines.
    Categorical and boolean columns: mean SHAP per category in the same colours,
    the criterion's categories outlined and their labels bold.

    Parameters
    ----------
    expl : GroupedShap
        SHAP values of the fit model.
    column : str
        A business column of ``expl``.
    criterion : Criterion, optional
        A criterion on ``column`` whose thresholds or categories are drawn.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure; y axis in log-odds.
    """
    fig, ax = _axes(ax)
    x = expl.data[column]
    s = expl.values[column]
    ax.set_title(f"How {column} moves the fit score"
                 + (f"\ncriterion: {criterion.describe()}" if criterion is not None else ""),
                 fontsize=10)
    direction = "above 0 = towards best, below 0 = towards worst"
    if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
        ok = x.notna()
        sv = s[ok].to_numpy(dtype=float)
        ax.scatter(x[ok], sv, s=8, alpha=0.5, edgecolors="none",
                   c=np.where(sv >= 0, TOWARDS_BEST, TOWARDS_WORST))
        if x[ok].gt(0).all() and x[ok].max() / max(x[ok].min(), 1e-9) > 100:
            ax.set_xscale("log")
        bounds = [b for b in ((criterion.low, criterion.high) if criterion is not None else ())
                  if b is not None]
        for i, b in enumerate(bounds):
            ax.axvline(b, color=OKABE_ITO["black"], ls="--", lw=1.2,
                       label="criterion bound" if i == 0 else None)
        if bounds:
            ax.legend(loc="best", fontsize=8)
        ax.axhline(0, color=OKABE_ITO["black"], lw=0.8)
        ax.set_xlabel(column)
        ax.set_ylabel(f"SHAP contribution (log-odds)\n{direction}", fontsize=9)
        _literal(ax)
        return fig
    text = x.astype("string").fillna("(missing)")
    cats = s.groupby(text).mean().sort_values(kind="stable")
    chosen = set(map(str, criterion.values)) if criterion is not None else set()
    vals = cats.to_numpy(dtype=float)
    in_crit = [str(c) in chosen for c in cats.index]
    ax.barh(np.arange(len(cats)), vals, color=np.where(vals >= 0, TOWARDS_BEST, TOWARDS_WORST),
            edgecolor=[OKABE_ITO["black"] if k else "none" for k in in_crit], linewidth=1.5)
    ax.set_yticks(np.arange(len(cats)), [str(c) for c in cats.index])
    for label, k in zip(ax.get_yticklabels(), in_crit, strict=True):
        if k:
            label.set_fontweight("bold")
    ax.axvline(0, color=OKABE_ITO["black"], lw=0.8)
    ax.set_xlabel("mean SHAP contribution (log-odds): right = towards best, left = towards worst"
                  + ("\nbold and outlined: the criterion's values" if chosen else ""), fontsize=9)
    ax.set_ylabel(column)
    _literal(ax)
    return fig


def calibration_plot(holdout: dict, *, title: str = "Calibration on held-out accounts",
                     ax: Axes | None = None) -> Figure:
    """Predicted probability vs observed rate, per quantile bin, with the diagonal.

    Parameters
    ----------
    holdout : dict
        A model's held-out metrics (:func:`icpml.models.classification_metrics`);
        its ``calibration`` points are drawn.
    title : str, default "Calibration on held-out accounts"
        Figure title.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The reliability curve on [0, 1] x [0, 1].
    """
    fig, ax = _axes(ax, size=(5, 4))
    pts = np.asarray(holdout.get("calibration") or [], dtype=float)
    ax.plot([0, 1], [0, 1], color=OKABE_ITO["grey"], ls=":", label="perfect")
    if len(pts):
        ax.plot(pts[:, 0], pts[:, 1], marker="o", color=OKABE_ITO["blue"], label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate\nabove the dotted line = model predicts too low", fontsize=9)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    _literal(ax)
    return fig


def gains_plot(y_true, score, *, title: str = "Cumulative gains (held-out)",
               ax: Axes | None = None) -> Figure:
    """Share of best-cohort accounts captured when working down the ranking.

    Parameters
    ----------
    y_true : array-like of bool or 0/1
        Best-cohort membership of each account.
    score : array-like of float
        The fit score of the same accounts.
    title : str, default "Cumulative gains (held-out)"
        Figure title.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The cumulative gains curve against the random diagonal.
    """
    fig, ax = _axes(ax, size=(5, 4))
    y = np.asarray(y_true, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    captured = np.cumsum(y[order]) / max(y.sum(), 1)
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    ax.plot(np.r_[0, share], np.r_[0, captured], color=OKABE_ITO["blue"], label="fit score")
    ax.plot([0, 1], [0, 1], color=OKABE_ITO["grey"], ls=":", label="random")
    ax.set_xlabel("share of accounts contacted, highest fit score first")
    ax.set_ylabel("share of best-cohort accounts reached\nhigher = better ranking", fontsize=9)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    _literal(ax)
    return fig


def tier_plot(tiers: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Accounts per tier (bars) and best-cohort rate per tier (line).

    Parameters
    ----------
    tiers : pandas.DataFrame
        From :func:`icpml.scoring.tier_summary` (``tier``, ``accounts`` and,
        when known, ``best_rate``).
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (with a second y axis for the rate).
    """
    fig, ax = _axes(ax, size=(6, 3.5))
    x = np.arange(len(tiers))
    ax.bar(x, tiers["accounts"], color=OKABE_ITO["sky"], label="accounts")
    ax.set_xticks(x, [str(t) for t in tiers["tier"]])
    ax.set_ylabel("held-out accounts (bars)")
    axes = [ax]
    if "best_rate" in tiers:
        ax2 = ax.twinx()
        ax2.plot(x, tiers["best_rate"], color=TOWARDS_BEST, marker="o",
                 label="best-cohort rate")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("best-cohort rate (line)\nhigher = better", fontsize=9)
        axes.append(ax2)
    ax.set_title("Tiers on held-out accounts: Tier 1 should have the highest rate", fontsize=10)
    _literal(*axes)
    return fig
