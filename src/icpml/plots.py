"""Figure builders for the report and notebooks.

Every function returns a matplotlib ``Figure``, accepts ``ax=None`` to draw into
an existing axes, and never calls ``show()``. Colours come from the Okabe-Ito
palette (distinguishable with the common colour-vision deficiencies); figures
are sized for print (7 x 4 inches) with labelled axes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from icpml.criteria import Criterion
from icpml.explain import Explanation

__all__ = ["shap_summary", "cohort_contrast_plot", "dependence_plot", "calibration_plot",
           "gains_plot", "tier_plot", "OKABE_ITO"]

#: Okabe-Ito colour-blind-safe palette.
OKABE_ITO = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
             "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000",
             "grey": "#999999"}
POS, NEG = OKABE_ITO["blue"], OKABE_ITO["vermillion"]


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


def shap_summary(expl: Explanation, *, title: str = "What moves the fit score",
                 top: int = 12, ax: Axes | None = None) -> Figure:
    """Mean positive and mean negative SHAP contribution per business column."""
    fig, ax = _axes(ax)
    imp = expl.signed_importance().head(top).iloc[::-1]
    y = np.arange(len(imp))
    ax.barh(y, imp["positive"], color=POS, label="pushes towards best")
    ax.barh(y, imp["negative"], color=NEG, label="pushes towards worst")
    ax.set_yticks(y, imp.index)
    ax.axvline(0, color=OKABE_ITO["black"], lw=0.8)
    ax.set_xlabel("mean SHAP contribution (log-odds)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def cohort_contrast_plot(contrast: pd.DataFrame, *, alpha: float = 0.05,
                         ax: Axes | None = None) -> Figure:
    """Effect size of each feature between best and worst cohorts; significant ones solid."""
    fig, ax = _axes(ax)
    c = contrast.copy()
    c["abs"] = c["effect"].abs()
    c = c.sort_values("abs", kind="stable").tail(15)
    y = np.arange(len(c))
    sig = (c["q_value"] < alpha).to_numpy()
    colors = [POS if s else OKABE_ITO["grey"] for s in sig]
    ax.barh(y, c["effect"].fillna(0), color=colors)
    ax.set_yticks(y, [f"{f} ({'V' if m.startswith('Cram') else 'δ'})"
                      for f, m in zip(c["feature"], c["effect_measure"], strict=True)])
    ax.axvline(0, color=OKABE_ITO["black"], lw=0.8)
    ax.set_xlabel("effect size: Cliff's δ (numeric, signed) or Cramér's V (categorical)")
    ax.set_title(f"Best vs worst cohort (coloured: BH q < {alpha})")
    return fig


def dependence_plot(expl: Explanation, column: str, criterion: Criterion | None = None, *,
                    ax: Axes | None = None) -> Figure:
    """SHAP value against the column's value, with the criterion's thresholds drawn.

    Numeric columns: a scatter with the bounds as dashed lines. Categorical and
    boolean columns: mean SHAP per category, the criterion's categories highlighted.
    """
    fig, ax = _axes(ax)
    x = expl.data[column]
    s = expl.values[column]
    ax.set_title(f"How {column} moves the fit score"
                 + (f"\ncriterion: {criterion.describe()}" if criterion is not None else ""),
                 fontsize=10)
    if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
        ok = x.notna()
        ax.scatter(x[ok], s[ok], s=8, alpha=0.5, color=OKABE_ITO["blue"], edgecolors="none")
        if x[ok].gt(0).all() and x[ok].max() / max(x[ok].min(), 1e-9) > 100:
            ax.set_xscale("log")
        for b in (criterion.low, criterion.high) if criterion is not None else ():
            if b is not None:
                ax.axvline(b, color=OKABE_ITO["vermillion"], ls="--", lw=1.5)
        ax.axhline(0, color=OKABE_ITO["black"], lw=0.8)
        ax.set_xlabel(column)
        ax.set_ylabel("SHAP contribution (log-odds)")
        return fig
    text = x.astype("string").fillna("(missing)")
    cats = s.groupby(text).mean().sort_values(kind="stable")
    chosen = set(map(str, criterion.values)) if criterion is not None else set()
    colors = [OKABE_ITO["vermillion"] if c in chosen else OKABE_ITO["sky"] for c in cats.index]
    ax.barh(np.arange(len(cats)), cats.to_numpy(), color=colors)
    ax.set_yticks(np.arange(len(cats)), [str(c) for c in cats.index])
    ax.axvline(0, color=OKABE_ITO["black"], lw=0.8)
    ax.set_xlabel("mean SHAP contribution (log-odds)")
    ax.set_ylabel(column)
    return fig


def calibration_plot(holdout: dict, *, title: str = "Calibration on held-out accounts",
                     ax: Axes | None = None) -> Figure:
    """Predicted probability vs observed rate, per quantile bin, with the diagonal."""
    fig, ax = _axes(ax, size=(5, 4))
    pts = np.asarray(holdout.get("calibration") or [], dtype=float)
    ax.plot([0, 1], [0, 1], color=OKABE_ITO["grey"], ls=":", label="perfect")
    if len(pts):
        ax.plot(pts[:, 0], pts[:, 1], marker="o", color=OKABE_ITO["blue"], label="model")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def gains_plot(y_true, score, *, title: str = "Cumulative gains (held-out)",
               ax: Axes | None = None) -> Figure:
    """Share of best-cohort accounts captured when working down the ranking."""
    fig, ax = _axes(ax, size=(5, 4))
    y = np.asarray(y_true, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    captured = np.cumsum(y[order]) / max(y.sum(), 1)
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    ax.plot(np.r_[0, share], np.r_[0, captured], color=OKABE_ITO["blue"], label="fit score")
    ax.plot([0, 1], [0, 1], color=OKABE_ITO["grey"], ls=":", label="random")
    ax.set_xlabel("share of accounts contacted")
    ax.set_ylabel("share of best-cohort accounts reached")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def tier_plot(tiers: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Accounts per tier (bars) and best-cohort rate per tier (line)."""
    fig, ax = _axes(ax, size=(6, 3.5))
    x = np.arange(len(tiers))
    ax.bar(x, tiers["accounts"], color=OKABE_ITO["sky"], label="accounts")
    ax.set_xticks(x, tiers["tier"])
    ax.set_ylabel("held-out accounts")
    if "best_rate" in tiers:
        ax2 = ax.twinx()
        ax2.plot(x, tiers["best_rate"], color=OKABE_ITO["vermillion"], marker="o",
                 label="best-cohort rate")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("best-cohort rate")
    ax.set_title("Tiers on held-out accounts")
    return fig
