"""The report reads right at any data size: n/a where nothing was measured, weak models called
weak, examples explained, next steps, plain-Markdown criteria.md.

The ``tiny-report-crash`` case (../shared/cases: 18 Salesforce accounts, min_per_cohort 3) is
replayed through the CLI; a generated tiny table of the same kind goes through the Python API.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from icpml.criteria import Criterion
from icpml.report import _lift_ci, _md_escape, _weakness, render_html, render_markdown


@pytest.fixture()
def tiny(tiny_report):
    """A generated table as small as the case: 18 accounts, 3 per cohort (tests/conftest.py)."""
    return tiny_report


def _cv_cell(html: str, model: str) -> str:
    m = re.search(rf"<td>{re.escape(model)}</td><td class=\"n\">([^<]*)</td>", html)
    assert m, f"no {model} row in the models table"
    return m.group(1)


def test_tiny_generated_table_gets_a_report(tiny):
    html = (tiny.report_dir / "report.html").read_text()
    assert "Tier 1" in html and "Next steps" in html
    assert "Weak fit model." in html and 'id="weak-fit"' in html  # held-out AUC 0.5
    md = (tiny.report_dir / "criteria.md").read_text()
    assert md.endswith("\n") and not md.endswith("\n\n")
    assert "**Weak fit model.**" in md


@pytest.mark.parametrize("drop", ["cv", "ci", "all"])
def test_unmeasured_metrics_show_na(tiny, drop):
    """What training leaves out on tiny data (CV when a class has < 2 training rows, the AUC
    interval, even the AUC) renders as n/a, never as a template error."""
    res = tiny.discovery
    for attr in ("fit_model", "churn_model"):
        model = getattr(tiny.discovery, attr)
        if model is None:
            continue
        cv = {"folds": 2} if drop in ("cv", "all") else model.cv
        ho = {k: v for k, v in model.holdout.items()
              if drop == "all" or (drop == "ci" and not k.startswith("roc_auc_ci"))
              or drop == "cv"}
        if drop == "all":
            ho = {}
        res = dataclasses.replace(res, **{attr: dataclasses.replace(model, cv=cv, holdout=ho)})
    html = render_html(res, figures={})
    md = render_markdown(res)
    if drop in ("cv", "all"):
        assert _cv_cell(html, "fit (best vs worst)") == "n/a"
    if drop == "all":
        assert "could not be measured" in html and "Fit model held-out ROC AUC n/a" in md
    if drop == "ci":
        assert "has no confidence interval" in html


@pytest.mark.integration  # the case through the CLI with tracking
def test_case_tiny_report(case_project):
    from icpml.cli import app

    work = case_project("tiny-report-crash")
    run = CliRunner().invoke(app, ["discover", "--config", "tiny.yaml"])
    assert run.exit_code == 0, run.output
    assert "Traceback" not in run.output
    folder = next((work / "reports").glob("tiny_*"))
    html = (folder / "report.html").read_text()
    assert _cv_cell(html, "fit (best vs worst)") == "n/a"  # cv.roc_auc_* left out by training
    assert "Weak fit model." in html  # held-out AUC 0.667 on 6 accounts, interval reaches 0.5
    assert "Next steps" in html
    md = (folder / "criteria.md").read_text()
    assert md.endswith(".\n") and "&lt;" not in md and "&amp;" not in md


# ----------------------------------------------------------------------------- weak models
def test_weakness_rules():
    assert _weakness("churn", {"roc_auc": 0.8, "roc_auc_ci_low": 0.7, "roc_auc_ci_high": 0.9}) is None
    why = _weakness("churn", {"roc_auc": 0.55, "roc_auc_ci_low": 0.48, "roc_auc_ci_high": 0.62})
    assert "0.55" in why and "includes 0.5" in why and "chance" in why
    assert "no confidence interval" in _weakness("fit", {"roc_auc": 0.9})
    assert "could not be measured" in _weakness("fit", {"roc_auc": float("nan")})
    assert "could not be measured" in _weakness("fit", {})


def test_weak_churn_model_is_called_weak(small_discovery):
    res = dataclasses.replace(small_discovery, churn_model=dataclasses.replace(small_discovery.churn_model, holdout={
        **small_discovery.churn_model.holdout, "roc_auc": 0.53, "roc_auc_ci_low": 0.47, "roc_auc_ci_high": 0.59}))
    html = render_html(res, figures={})
    assert "Weak churn model." in html and "not reliable" in html
    assert "(not reliable: weak churn model)" in html  # the churn inside / outside columns
    assert "weak: not reliable" in html  # the models table
    md = render_markdown(res)
    assert "**Weak churn model.**" in md and "churn inside / outside (not reliable)" in md
    assert "Weak fit model" not in html  # the fit model itself is fine
    # and a good churn model gets no such label
    assert "not reliable" not in render_html(small_discovery, figures={})


# ----------------------------------------------------------------------------- wording
def test_lift_wording():
    assert _lift_ci({"lift": 0.0, "lift_ci": [0.0, 0.0]}) == "no best customers in this segment"
    assert _lift_ci({"lift": 1.234, "lift_ci": [1.1, 1.4]}) == "1.23x (1.10-1.40)"
    assert _lift_ci({"lift": 0.002, "lift_ci": [0.0, 0.01]}) == "<0.01x (0.00-0.01)"
    assert _lift_ci({}) == "n/a"


def test_anti_icp_without_best_customers_says_so(small_discovery):
    anti = small_discovery.criteria.anti_icp[0]
    zero = dataclasses.replace(anti, evidence={**anti.evidence, "lift": 0.0, "lift_ci": [0.0, 0.0]})
    res = dataclasses.replace(small_discovery, criteria=dataclasses.replace(
        small_discovery.criteria, anti_icp=[zero, *small_discovery.criteria.anti_icp[1:]]))
    for text in (render_html(res, figures={}), render_markdown(res)):
        assert "no best customers in this segment" in text
        assert "0.00x (0.00-0.00)" not in text and "0.00x" not in text


def test_missing_value_reason_says_unknown():
    c = Criterion(kind="icp", column="employees", op="between", low=101, high=950)
    assert c.reason(None) == "employees is unknown (not in the 101-950 band)"
    assert c.reason(float("nan")).startswith("employees is unknown")
    assert c.reason(500) == "employees 500 is inside the 101-950 band"
    c = Criterion(kind="anti_icp", column="employees", op="<", high=50)
    assert c.reason(None) == "employees is unknown (does not meet employees < 50)"


def test_contrast_table_columns_are_labelled(small_discovery):
    html = render_html(small_discovery, figures={})
    assert "<th>best cohort (top 25%)</th><th>worst cohort (bottom 25%)</th>" in html
    assert "median and interquartile range" in html


def test_examples_are_random_per_tier_and_explained(small_discovery):
    html = render_html(small_discovery, figures={})
    assert "drawn at random from each tier" in html and "not from the fit score" in html
    from icpml.report import _examples

    first, again = _examples(small_discovery, 5), _examples(small_discovery, 5)
    assert first == again  # seeded: a re-run shows the same accounts
    t3 = small_discovery.scored[small_discovery.scored["tier"] == "Tier 3"]
    shown = [r["fit_score"] for r in first["Tier 3"]]
    assert shown == sorted(shown, reverse=True)
    assert shown != sorted(t3["fit_score"], reverse=True)[:5]  # not simply the top scores


def test_next_steps(small_discovery, tmp_path):
    html = render_html(small_discovery, figures={}, report_dir=tmp_path / "reports" / "demo_abc")
    md = render_markdown(small_discovery, report_dir=tmp_path / "reports" / "demo_abc")
    review = (datetime.now().astimezone() + timedelta(days=90)).date()
    for text in (html, md):
        assert "Next steps" in text
        assert "icpml export --criteria" in text and "demo_abc/criteria.json --format sql" in text
        assert "icpml score -c CONFIG.yaml --data prospects.csv --out scored.csv" in text
        assert "icpml retrain -c CONFIG.yaml" in text
        dates = {d for d in re.findall(r"\d{4}-\d{2}-\d{2}", text)}
        assert any(abs((datetime.fromisoformat(d).date() - review).days) <= 1 for d in dates)


# ----------------------------------------------------------------------------- criteria.md
def test_criteria_md_is_plain_markdown(small_discovery):
    md = render_markdown(small_discovery)
    assert md.endswith("\n") and not md.endswith("\n\n")
    assert not re.search(r"&(?:lt|gt|amp|quot|#\d+);", md)  # no HTML entities
    # comparisons as written ("150 <= employees <= 600", or one-sided on 600 accounts)
    assert re.search(r"\d <= employees|employees [<>]=? \d", md)
    assert "employees &" not in md and "&lt;" not in md


@pytest.mark.parametrize(("raw", "shown"), [
    ("employees <= 950", "employees <= 950"),
    ("<script>alert(1)</script>", r"\<script>alert(1)\</script>"),
    ("<1M", "<1M"),
    ("a|b", r"a\|b"),
    ("$1M-$5M", r"\$1M-\$5M"),
    ("AT&T", "AT&T"),
    ("&lt;b&gt;", r"\&lt;b\&gt;"),
    ("line\nbreak", "line break"),
])
def test_markdown_escape(raw, shown):
    assert _md_escape(raw) == shown


def test_no_anti_icp_is_said_not_left_out(small_discovery):
    """A newcomer read a missing Anti-ICP section as an omission: it says none was found."""
    res = dataclasses.replace(small_discovery, criteria=dataclasses.replace(small_discovery.criteria,
                                                                      anti_icp=[]))
    text = render_markdown(res)
    assert "## Anti-ICP: none found" in text and "no account is tiered Excluded" in text
    assert "## Anti-ICP: none found" not in render_markdown(small_discovery)


@pytest.mark.parametrize("method, words", [("crossfit", "No exclusion held up out of fold,"),
                                           ("holdout", "No exclusion held up on the held-out accounts,")])
def test_no_anti_icp_says_where_the_evidence_was_measured(small_discovery, method, words):
    """Under cross-fitting (under 1,500 accounts) the evidence is out of fold, not on held-out
    accounts: criteria.md said "held up on the held-out accounts" right under a verdict that
    says "out of fold". Both methods, on the unit discovery with its exclusions removed."""
    import copy



    cs = copy.deepcopy(small_discovery.criteria)
    cs.anti_icp = []
    cs.meta = {**cs.meta, "evidence": {**(cs.meta.get("evidence") or {}), "method": method}}
    text = render_markdown(dataclasses.replace(small_discovery, criteria=cs))
    assert "## Anti-ICP: none found" in text and words in text


@pytest.mark.parametrize("method", ["crossfit", "holdout"])
def test_html_evidence_note_follows_the_evidence_method(small_discovery, method):
    """report.html said "every number above is measured on N held-out accounts" when the
    criteria's evidence was cross-fitted on every account (360 out of fold vs 108 held out)."""
    import copy

    cs = copy.deepcopy(small_discovery.criteria)
    ev = {**(cs.meta.get("evidence") or {}), "method": method, "folds": 5,
          "n": int(cs.meta["n_accounts"])}
    cs.meta = {**cs.meta, "evidence": ev}
    html = render_html(dataclasses.replace(small_discovery, criteria=cs), {})
    n, n_ho = cs.meta["n_accounts"], cs.meta["n_holdout"]
    if method == "crossfit":
        assert f"each of the {n} accounts is judged by criteria chosen without it" in html
        assert "every number above is measured on" not in html
        assert "Coverage: share of accounts (out of fold) matching" in html
    else:
        assert f"every number above is measured on {n_ho} held-out accounts" in html
        assert "Coverage: share of held-out accounts matching" in html


def test_report_states_the_cohorts_a_yes_no_outcome_gives(small_discovery):
    """A single yes/no outcome (Bank Marketing's ``y``, 12% yes) splits the accounts at the tied
    value: best = every yes, worst = every no. criteria.md and report.html said "Best cohort =
    top 25%, worst = bottom 25%" all the same; they state the shares measured."""
    import numpy as np
    import pandas as pd

    from icpml.cohorts import label_cohorts

    n = len(small_discovery.accounts)
    for share in (0.12, 0.4):  # a rare and a common "yes"
        yes = pd.Series(np.arange(n) < round(share * n), index=small_discovery.accounts.index)
        cohorts = label_cohorts(yes.astype(float))
        res = dataclasses.replace(small_discovery, cohorts=cohorts)
        md = render_markdown(res)
        best, worst = f"{share:.0%}", f"{1 - share:.0%}"
        assert f"Best cohort = top {best}, worst = bottom {worst} of a value score" in md, md[-600:]
        assert "a tied value score, such as a yes/no outcome" in md
        assert f"Best cohort = top {best}, worst = bottom {worst}" in render_html(res, {})
    # quantile cohorts: the configured shares, no note
    md = render_markdown(small_discovery)
    assert "Best cohort = top 25%, worst = bottom 25% of a value score" in md
    assert "tied value score" not in md


def test_criteria_md_has_churn_columns_only_with_a_churn_model(small_discovery):
    """Without a churn model every "churn inside / outside" cell read "n/a / n/a": the
    columns are left out instead, and every table row keeps as many cells as its header."""
    with_churn = render_markdown(small_discovery)
    assert "churn inside / outside" in with_churn and "| churn rate |" in with_churn
    res = dataclasses.replace(small_discovery, churn_model=None)
    text = render_markdown(res)
    assert "churn inside" not in text and "churn rate" not in text and "n/a / n/a" not in text
    for block in re.findall(r"(?:^\|.*\|\n)+", text, flags=re.M):
        widths = {row.count(" | ") for row in block.splitlines() if not row.startswith("| ---")}
        assert len(widths) == 1, block
