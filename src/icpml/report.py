"""The RevOps criteria report: ``report.html`` and ``criteria.md`` from one template set.

A report folder (``reports/<name>_<run8>/``) holds:

* ``report.html``: self-contained (figures embedded as PNG data URIs, inline CSS,
  no scripts, no network). First screen: the verdict, a warning for any weak
  model (held-out ROC AUC interval reaching 0.5, or not measurable), the ICP, the
  anti-ICP with the best customers each exclusion would wrongly drop, tiers with
  expected outcomes, random sample accounts per tier (and what they are), next
  steps (export and score commands, a review date), model version, data
  fingerprint, date. Below: models, cohort contrast, SHAP summaries, a dependence
  plot per criterion with its threshold, calibration and gains, per-criterion
  statistics, stability and fidelity, unconfirmed criteria, warnings, changes
  since the last champion. Every chart says its direction in words, and blue /
  vermillion mean towards best (lower churn) / towards worst (higher churn)
  throughout (see :mod:`icpml.plots`).
* ``criteria.md``: the same first page in plain Markdown (no HTML entities; ends
  with a newline), for a wiki or a CRM note.
* ``criteria.json`` (the contract), ``contrast.csv``, ``scored.csv`` (both
  spreadsheet-safe, see :func:`icpml._io.neutralise_formulas`), ``figures/*.png``.

A value the run could not measure (cross-validation on a handful of accounts, an
interval on six held-out ones) shows as "n/a": a report renders at any data size.
Every user-provided string (account names, category values) is escaped in HTML
by Jinja2's autoescape and backslash-escaped where Markdown would read it as
markup. The folder is built next to its destination and renamed into place, so a
reader never sees half a report.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from icpml import plots
from icpml._io import folder_name, neutralise_formulas, staged_folder
from icpml._io import safe_name as _safe
from icpml._vocab import EXCLUDED, TIERS
from icpml.cohorts import BEST, MIDDLE, WORST
from icpml.errors import output_error
from icpml.scoring import round_scores

if TYPE_CHECKING:
    from icpml.pipeline import Discovery

__all__ = ["write_report", "render_html", "render_markdown", "report_context"]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- formatting
def _missing(x) -> bool:
    """None, a value the model did not measure (an undefined template value) or NaN/inf."""
    if x is None or isinstance(x, jinja2.Undefined):
        return True
    if isinstance(x, str | bool):
        return False
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _pct(x) -> str:
    return "n/a" if _missing(x) else f"{x:.0%}"


def _lift(x) -> str:
    if _missing(x):
        return "n/a"
    return "<0.01x" if 0 < x < 0.005 else f"{x:.2f}x"


def _ci(ci) -> str:
    if _missing(ci) or not ci or any(_missing(v) for v in ci):
        return "n/a"
    return f"{ci[0]:.2f}-{ci[1]:.2f}"


def _lift_ci(ev) -> str:
    """A segment's lift with its interval; a segment with no best customer says so in words."""
    ev = {} if _missing(ev) else ev
    lift = ev.get("lift")
    if not _missing(lift) and lift == 0:
        return "no best customers in this segment"
    ci = _ci(ev.get("lift_ci"))
    return _lift(lift) + ("" if ci == "n/a" else f" ({ci})")


def _num(x, fmt: str = "{:.3f}") -> str:
    return "n/a" if _missing(x) else fmt.format(x)


def _pval(x) -> str:
    if _missing(x):
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _cv(cv) -> str:
    """Cross-validated ROC AUC as ``mean ± sd``; ``n/a`` when too few accounts to cross-validate."""
    cv = {} if _missing(cv) else cv
    mean, sd = cv.get("roc_auc_mean"), cv.get("roc_auc_std")
    if _missing(mean):
        return "n/a"
    return f"{mean:.3f}" + ("" if _missing(sd) else f" ± {sd:.3f}")


def _weakness(label: str, holdout: dict) -> str | None:
    """Why a model is weak (no better than chance, or not measurable), or None when it is not.

    Weak: the held-out ROC AUC is unknown, its 95% interval reaches 0.5 (a coin toss), or it
    has no interval (too few held-out accounts to tell it from chance).
    """
    auc, lo, hi = (holdout.get(k) for k in ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high"))
    if _missing(auc):
        return f"the {label} model could not be measured on held-out accounts"
    if _missing(lo) or _missing(hi):
        return (f"the {label} model's held-out ROC AUC {auc:.2f} has no confidence interval "
                "(too few held-out accounts), so it cannot be told apart from chance")
    if lo <= 0.5:
        return (f"the {label} model's held-out ROC AUC {auc:.2f} (95% CI {lo:.2f}-{hi:.2f}) "
                "includes 0.5: it is no better than chance")
    return None


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("icpml", "templates"),
    # every HTML template is escaped (names, category values and criteria are user data);
    # the Markdown one is not HTML. select_autoescape(["html"]) would miss "report.html.j2".
    autoescape=lambda name: bool(name) and name.endswith((".html", ".html.j2")),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters.update(pct=_pct, lift=_lift, ci=_ci, lift_ci=_lift_ci, num=_num, pval=_pval,
                    cv=_cv)


_MD_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # what would open an HTML tag, comment or autolink
_MD_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")  # what would read as an entity (&lt; &#60;)
_MD_ACTIVE = re.compile(r"([$`|])")  # math ($...$ on GitHub), code spans, table cells


def _md_escape(value):
    """Markdown output: plain Markdown, yet a user string can neither inject HTML nor break a
    table row. Only what a renderer would read as a tag, an entity, math (``$``), a code span
    or a cell border (``|``) is backslash-escaped (CommonMark), so ``employees <= 950`` stays
    as written; newlines become spaces."""
    if not isinstance(value, str):
        return value
    value = _MD_ENTITY.sub(r"\\&", _MD_TAG.sub(r"\\<", _MD_ACTIVE.sub(r"\\\1", value)))
    return value.replace("\r", " ").replace("\n", " ")


_MD_ENV = _ENV.overlay(finalize=_md_escape)


#: matplotlib's "Glyph 24467 (\\N{CJK UNIFIED IDEOGRAPH-5F93}) missing from font(s) DejaVu Sans."
_MISSING_GLYPH = re.compile(r"Glyph \d+ \((?P<char>.*?)\) missing from font")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    fig.clf()
    return buf.getvalue()


@contextmanager
def _one_font_warning() -> Iterator[None]:
    """Characters the installed fonts lack (column names or values in CJK, Arabic, emoji...)
    draw as boxes in the figures; matplotlib warns once per character and figure, each with
    a source line, which buried the run's output. They are collected into one logged warning;
    any other warning passes through unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    missing: list[str] = []
    for w in caught:
        m = _MISSING_GLYPH.search(str(w.message))
        if m is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        elif _glyph(m["char"]) not in missing:
            missing.append(_glyph(m["char"]))
    if missing:
        log.warning("the report's figures draw %d character(s) the installed fonts lack as "
                    "boxes (%s); the report's text and tables show them (install a font that "
                    "has them, e.g. Noto Sans CJK, for the figures)", len(missing),
                    "".join(missing[:8]))


def _glyph(name: str) -> str:
    r"""``\N{CJK UNIFIED IDEOGRAPH-5F93}`` -> the character; anything else as it is."""
    import unicodedata

    if name.startswith("\\N{") and name.endswith("}"):
        try:
            return unicodedata.lookup(name[3:-1])
        except KeyError:
            return name
    return name


def _figures(res: Discovery) -> dict[str, bytes]:
    """Render every figure once (PNG bytes by file name); characters no installed font has
    are named in one logged warning (see :func:`_one_font_warning`)."""
    with _one_font_warning():
        return _render_figures(res)


def _render_figures(res: Discovery) -> dict[str, bytes]:
    figs = {"shap_fit.png": _png(plots.shap_summary(res.fit_explanation))}
    if res.churn_explanation is not None:
        figs["shap_churn.png"] = _png(plots.shap_summary(res.churn_explanation, target="churn",
                                                         title="What moves churn risk"))
    figs["contrast.png"] = _png(plots.cohort_contrast_plot(res.contrast))
    figs["calibration_fit.png"] = _png(plots.calibration_plot(res.fit_model.holdout,
                                                              title="Fit model calibration"))
    if res.churn_model is not None:
        figs["calibration_churn.png"] = _png(plots.calibration_plot(
            res.churn_model.holdout, title="Churn model calibration"))
    ho = (res.split == "holdout").to_numpy()
    ends = ho & (res.cohorts != MIDDLE).to_numpy()
    figs["gains.png"] = _png(plots.gains_plot((res.cohorts[ends] == BEST).to_numpy(),
                                              res.scored["fit_score"].to_numpy()[ends]))
    figs["tiers.png"] = _png(plots.tier_plot(res.tiers))
    seen = set()
    for c in res.criteria.icp + res.criteria.anti_icp:
        if c.column in seen or c.column not in res.fit_explanation.values.columns:
            continue
        seen.add(c.column)
        figs[f"dependence_{_safe(c.column)}.png"] = _png(
            plots.dependence_plot(res.fit_explanation, c.column, c))
    return figs




#: Days from a run to the suggested review of its criteria (the report's "Next steps").
REVIEW_AFTER_DAYS = 90


def _examples(res: Discovery, k: int) -> dict[str, list[dict]]:
    """Up to ``k`` accounts per tier drawn at random (seeded by ``models.seed``, so a re-run
    shows the same ones), listed highest fit score first."""
    cfg = res.config
    name_col, id_col = cfg.columns.name, cfg.columns.id
    scored = res.scored
    names = (res.accounts.set_index(id_col)[name_col] if name_col else None)
    out = {}
    for tier in TIERS:
        in_tier = scored[scored["tier"] == tier]
        rows = in_tier.sample(n=min(k, len(in_tier)), random_state=cfg.models.seed)
        rows = rows.sort_values("fit_score", ascending=False, kind="stable")
        shown = (names.reindex(rows[id_col]).tolist() if names is not None else [None] * len(rows))
        out[tier] = [
            {"id": r[id_col], "name": n if isinstance(n, str) else "",
             "fit_score": r["fit_score"],
             "why": r["exclusion_reasons"] if tier == EXCLUDED else r["top_reasons"]}
            for (_, r), n in zip(rows.iterrows(), shown, strict=True)
        ]
    return out


def _shown_path(path: Path | None, cfg) -> str:
    """``path`` as a user would type it: relative to the project root when inside it."""
    if path is None:
        return str(Path(cfg.report.dir) / f"{_safe(cfg.name)}_<run>")
    root = cfg.project_root
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve())) if root else str(path)
    except ValueError:
        return str(path)


def _cohort_shares(res: Discovery) -> tuple[float, float, bool]:
    """The shares of accounts in the best and worst cohorts as labelled, and whether a tied
    value score moved them off the configured quantiles (a yes/no outcome: best = every yes,
    worst = every no; see :func:`icpml.cohorts.label_cohorts`), so the report states the
    cohorts it measured, not the configured 25% / 25%."""
    cfg = res.config.cohorts
    labels = res.cohorts.astype("string")
    n = max(int(labels.notna().sum()), 1)
    best, worst = float((labels == BEST).sum()) / n, float((labels == WORST).sum()) / n
    tied = abs(best - cfg.best_quantile) > 0.05 or abs(worst - cfg.worst_quantile) > 0.05
    return (best, worst, True) if tied else (cfg.best_quantile, cfg.worst_quantile, False)


def report_context(res: Discovery, figures: dict[str, bytes] | None = None,
                   report_dir: Path | None = None, *, run_id: str | None = None,
                   retrain: dict | None = None) -> dict:
    """Everything the templates show, as plain values.

    Parameters
    ----------
    res : Discovery
        The discovery to report. Not modified.
    figures : dict of str to bytes, optional
        PNG figures by file name, embedded as data URIs (none when omitted).
    report_dir : pathlib.Path, optional
        Where the report folder ends up (named in the export command of "Next
        steps"); a placeholder when not given.
    run_id : str, optional
        The MLflow run the report belongs to (None: untracked).
    retrain : dict, optional
        The retraining decision shown in "Changes since the last champion"
        (:func:`icpml.retrain.retrain`).

    Returns
    -------
    dict
        Template variables: texts, numbers, tables as lists of dicts, and
        ``img`` (file name -> ``data:image/png;base64,...``).
    """
    cfg, cs = res.config, res.criteria
    now = datetime.now(UTC)
    k = cfg.report.sample_accounts_per_tier
    dep = {c.column: f"dependence_{_safe(c.column)}.png" for c in cs.icp + cs.anti_icp}
    weak = {"fit": _weakness("fit", res.fit_model.holdout)}
    if res.churn_model is not None:
        weak["churn"] = _weakness("churn", res.churn_model.holdout)
    folder = _shown_path(report_dir, cfg)
    best_q, worst_q, tied = _cohort_shares(res)
    return {
        "title": f"{cfg.name}: Ideal Customer Profile",
        "generated": now.strftime("%Y-%m-%d %H:%M UTC"),
        "review_date": (now + timedelta(days=REVIEW_AFTER_DAYS)).strftime("%Y-%m-%d"),
        "review_days": REVIEW_AFTER_DAYS,
        "run_id": run_id,
        "fingerprint": res.fingerprint,
        "n_accounts": len(res.accounts),
        "meta": cs.meta,
        "verdict": cs.verdict,
        "icp": cs.icp,
        "anti": cs.anti_icp,
        "icp_ev": cs.icp_evidence,
        "anti_ev": cs.anti_evidence,
        "unconfirmed": cs.unconfirmed,
        "tiers": res.tiers.to_dict(orient="records"),
        "tier_definition": cs.tiers.get("definition", {}),
        "samples": _examples(res, k),
        "samples_k": k,
        "seed": cfg.models.seed,
        "fit": res.fit_model,
        "churn": res.churn_model,
        "weak": weak,
        "churn_unreliable": bool(weak.get("churn")),
        "contrast": res.contrast.head(20).to_dict(orient="records"),
        "stability": cs.meta.get("stability") or {},
        "shap_rows": cs.meta.get("shap_rows") or {},
        "fidelity": cs.meta.get("fidelity") or {},
        "warnings": list(dict.fromkeys(res.warnings + cs.warnings)),
        "retrain": retrain,
        "dependence": dep,
        "best_q": best_q,
        "worst_q": worst_q,
        "cohorts_tied": tied,
        "outcomes": [f"{m.column} ({m.direction} is better, weight {m.weight:g})"
                     for m in cfg.columns.outcomes],
        "next": {
            "criteria": f"{folder}/criteria.json",
            "config_name": cfg.name,
        },
        "img": {k: "data:image/png;base64," + base64.b64encode(v).decode()
                for k, v in (figures or {}).items()},
    }


def render_html(res: Discovery, figures: dict[str, bytes] | None = None,
                report_dir: Path | None = None, *, run_id: str | None = None,
                retrain: dict | None = None) -> str:
    """The self-contained HTML report as a string.

    Parameters
    ----------
    res : Discovery
        The discovery to report. Not modified.
    figures : dict of str to bytes, optional
        PNG figures by file name; drawn from ``res`` when None.
    report_dir : pathlib.Path, optional
        Where the report folder ends up (see :func:`report_context`).
    run_id : str, optional
        The MLflow run the report belongs to (None: untracked).
    retrain : dict, optional
        The retraining decision shown in "Changes since the last champion"
        (:func:`icpml.retrain.retrain`).

    Returns
    -------
    str
        One HTML page with the figures embedded (no external files).
    """
    figures = _figures(res) if figures is None else figures
    return _ENV.get_template("report.html.j2").render(
        **report_context(res, figures, report_dir, run_id=run_id, retrain=retrain))


def render_markdown(res: Discovery, report_dir: Path | None = None, *, run_id: str | None = None,
                    retrain: dict | None = None) -> str:
    """The one-page Markdown summary (``criteria.md``) as a string.

    Parameters
    ----------
    res : Discovery
        The discovery to report. Not modified.
    report_dir : pathlib.Path, optional
        Where the report folder ends up (see :func:`report_context`).
    run_id : str, optional
        The MLflow run the report belongs to (None: untracked).
    retrain : dict, optional
        The retraining decision shown in "Changes since the last champion"
        (:func:`icpml.retrain.retrain`).

    Returns
    -------
    str
        Plain Markdown (no HTML entities), ending with a newline.
    """
    text = _MD_ENV.get_template("criteria.md.j2").render(
        **report_context(res, {}, report_dir, run_id=run_id, retrain=retrain))
    return text.rstrip("\n") + "\n"


def write_report(res: Discovery, out_dir: Path | None = None, *, run_id: str | None = None,
                 retrain: dict | None = None) -> Path:
    """Write the report folder atomically and return its path.

    The folder is built under a temporary name next to its destination and moved
    into place, so a failed or interrupted write leaves the previous report (or
    nothing), never half a folder. It holds ``report.html``, ``criteria.md``,
    ``criteria.json``, ``contrast.csv``, ``scored.csv`` (formula-like cells
    neutralised) and ``figures/``.

    Parameters
    ----------
    res : Discovery
        The discovery to report. Not modified.
    out_dir : pathlib.Path, optional
        Default: ``<report.dir>/<config name>_<run id[:8]>`` (``_local`` when untracked).
    run_id : str, optional
        The MLflow run the report belongs to (None: untracked); names the default
        folder and is shown in the report.
    retrain : dict, optional
        The retraining decision shown in "Changes since the last champion"
        (:func:`icpml.retrain.retrain`).

    Returns
    -------
    pathlib.Path
        The report folder.

    Raises
    ------
    OutputError
        The folder cannot be written (permissions, disk full), in one line.
    """
    cfg = res.config
    if out_dir is None:
        out_dir = cfg.resolve(cfg.report.dir) / folder_name(cfg.name, run_id)
    out_dir = Path(out_dir)
    figures = _figures(res)
    try:
        with staged_folder(out_dir) as tmp:
            (tmp / "figures").mkdir()
            for name, data in figures.items():
                (tmp / "figures" / name).write_bytes(data)
            (tmp / "report.html").write_text(
                render_html(res, figures, out_dir, run_id=run_id, retrain=retrain), encoding="utf-8")
            (tmp / "criteria.md").write_text(
                render_markdown(res, out_dir, run_id=run_id, retrain=retrain), encoding="utf-8")
            (tmp / "criteria.json").write_text(res.criteria.to_json(), encoding="utf-8")
            # for people, opened in spreadsheets: formula-like text cells neutralised (see _io)
            neutralise_formulas(res.contrast).to_csv(tmp / "contrast.csv", index=False)
            neutralise_formulas(round_scores(res.scored)).to_csv(tmp / "scored.csv", index=False)
    except OSError as err:
        raise output_error(out_dir, err) from None
    return out_dir
