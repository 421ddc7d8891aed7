"""Figures draw user text literally and say their direction in words, in the same colours.

The ``report-mathtext-crash`` case (../shared/cases) is replayed at the bottom: a category value
"$50k_to_$100k" crashed every report after full training (matplotlib math text).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from icpml import plots
from icpml.criteria import Criterion
from icpml.explain import GroupedShap

DOLLARS = ["$1M-$5M", "$50k_to_$100k", "tier $#1$", "{<$1M, >$100M}", r"a\$b", "plain"]


def _expl(columns: dict[str, pd.Series], seed: int = 0) -> GroupedShap:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(columns)
    values = pd.DataFrame(rng.normal(size=data.shape), columns=data.columns)
    return GroupedShap(values=values, base_value=0.0, raw_output=values.sum(axis=1).to_numpy(),
                       data=data, max_additivity_error=0.0)


def _draw(fig) -> None:
    fig.savefig(io.BytesIO(), format="png")  # raises on any math text that does not parse


def _labels(ax, axis="y") -> list[str]:
    return [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]


@pytest.fixture
def dollar_expl():
    rng = np.random.default_rng(1)
    n = 300
    return _expl({
        "revenue $band$": pd.Series(rng.choice(DOLLARS, n), dtype="string"),
        "spend_$_usd_$": pd.Series(rng.lognormal(5, 2, n)),
        "plain": pd.Series(rng.normal(size=n)),
    })


def test_category_values_with_dollars_are_drawn_literally(dollar_expl):
    crit = Criterion(kind="icp", column="revenue $band$", op="in", values=("$1M-$5M", "tier $#1$"))
    fig = plots.dependence_plot(dollar_expl, "revenue $band$", crit)
    _draw(fig)
    ax = fig.axes[0]
    labels = _labels(ax)
    assert sorted(labels) == sorted(DOLLARS)  # each tick label is the raw value, "$" kept
    assert all(not t.get_parse_math() for t in ax.get_yticklabels())
    assert "revenue $band$" in ax.get_title() and "$1M-$5M" in ax.get_title()
    assert not ax.title.get_parse_math() and ax.get_ylabel() == "revenue $band$"
    # the criterion's values are marked in bold (text unchanged), the others not
    bold = {t.get_text() for t in ax.get_yticklabels() if t.get_fontweight() == "bold"}
    assert bold == {"$1M-$5M", "tier $#1$"}


def test_numeric_column_name_with_dollars_keeps_log_ticks(dollar_expl):
    crit = Criterion(kind="icp", column="spend_$_usd_$", op="between", low=50.0, high=500.0)
    fig = plots.dependence_plot(dollar_expl, "spend_$_usd_$", crit)
    _draw(fig)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "spend_$_usd_$" and not ax.xaxis.label.get_parse_math()
    assert ax.get_xscale() == "log"
    # matplotlib's own 10^k tick labels are math text and stay so (rendered as powers)
    assert any(t.get_text().startswith("$\\mathdefault") and t.get_parse_math()
               for t in ax.get_xticklabels())


def test_summaries_with_dollar_column_names(dollar_expl):
    for fig in (plots.shap_summary(dollar_expl),
                plots.cohort_contrast_plot(pd.DataFrame({
                    "feature": ["spend_$_usd_$", "revenue $band$"], "effect": [0.3, 0.2],
                    "effect_measure": ["Cliff's delta", "Cramér's V"], "q_value": [0.01, 0.01]})),
                plots.tier_plot(pd.DataFrame({"tier": ["$Tier 1$", "Tier 2"], "accounts": [3, 4],
                                              "best_rate": [0.5, 0.2]}))):
        _draw(fig)
        labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels()]
        assert any("$" in t and "mathdefault" not in t for t in labels), labels


def _legend(fig) -> dict[str, str]:
    from matplotlib.colors import to_hex

    leg = fig.axes[0].get_legend()
    return {t.get_text(): to_hex(h.get_facecolor()) for t, h in zip(leg.get_texts(),
                                                                    leg.legend_handles, strict=True)}


def test_churn_chart_legend_points_the_right_way(dollar_expl):
    fit = _legend(plots.shap_summary(dollar_expl))
    churn = _legend(plots.shap_summary(dollar_expl, title="What moves churn risk"))
    assert churn == _legend(plots.shap_summary(dollar_expl, target="churn"))
    best, worst = plots.TOWARDS_BEST.lower(), plots.TOWARDS_WORST.lower()
    assert fit == {"pushes towards best": best, "pushes towards worst": worst}
    assert churn == {"raises churn risk (towards worst)": worst,
                     "lowers churn risk (towards best)": best}
    # the churn bars: positive SHAP (raises churn) drawn in the towards-worst colour
    ax = plots.shap_summary(dollar_expl, target="churn").axes[0]
    from matplotlib.colors import to_hex
    right = {to_hex(p.get_facecolor()) for p in ax.patches if p.get_width() > 0}
    assert right == {worst}
    assert "right = more churn" in ax.get_xlabel()


def test_every_chart_states_its_direction(dollar_expl):
    res = {
        "shap": plots.shap_summary(dollar_expl).axes[0].get_xlabel(),
        "dependence_cat": plots.dependence_plot(dollar_expl, "revenue $band$").axes[0].get_xlabel(),
        "dependence_num": plots.dependence_plot(dollar_expl, "plain").axes[0].get_ylabel(),
        "contrast": plots.cohort_contrast_plot(pd.DataFrame({
            "feature": ["x"], "effect": [-0.3], "effect_measure": ["Cliff's delta"],
            "q_value": [0.01]})).axes[0].get_xlabel(),
        "calibration": plots.calibration_plot({}).axes[0].get_ylabel(),
        "gains": plots.gains_plot([1, 0], [0.9, 0.1]).axes[0].get_ylabel(),
        "tiers": plots.tier_plot(pd.DataFrame({"tier": ["Tier 1"], "accounts": [1],
                                               "best_rate": [0.5]})).axes[1].get_ylabel(),
    }
    assert "towards best" in res["shap"] and "towards worst" in res["shap"]
    assert "towards best" in res["dependence_cat"] and "towards best" in res["dependence_num"]
    assert "higher in the best cohort" in res["contrast"]
    assert "too low" in res["calibration"]
    assert "higher = better" in res["gains"] and "higher = better" in res["tiers"]


def test_dependence_colours_follow_the_sign(dollar_expl):
    from matplotlib.colors import to_hex

    ax = plots.dependence_plot(dollar_expl, "revenue $band$").axes[0]
    for bar in ax.patches:
        want = plots.TOWARDS_BEST if bar.get_width() >= 0 else plots.TOWARDS_WORST
        assert to_hex(bar.get_facecolor()) == want.lower()


# ----------------------------------------------------------------------------- the case
@pytest.mark.integration  # a full discovery of the case, with its report
def test_case_report_mathtext_crash(case_project):
    from icpml import run_discovery
    from icpml.config import load_config

    work = case_project("report-mathtext-crash")
    cfg = load_config(work / "cfg.yaml")
    run = run_discovery(cfg, pd.read_csv(work / "accounts.csv"), track=False, report=True)
    res = run.discovery
    assert (run.report_dir / "report.html").is_file()
    assert (run.report_dir / "figures" / "dependence_industry.png").stat().st_size > 1000
    crit = next(c for c in res.criteria.icp if c.column == "industry")
    assert "$50k_to_$100k" in crit.values
    fig = plots.dependence_plot(res.fit_explanation, "industry", crit)
    _draw(fig)
    assert "$50k_to_$100k" in _labels(fig.axes[0])  # the raw value, dollar signs and all
    html = (run.report_dir / "report.html").read_text()
    assert "industry in {$50k_to_$100k, FinTech}" in html
