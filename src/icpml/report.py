"""The RevOps criteria report: ``report.html`` and ``criteria.md`` from one template set.

A report folder (``reports/<name>_<run8>/``) holds:

* ``report.html``: self-contained (figures embedded as PNG data URIs, inline CSS,
  no scripts, no network). First screen: the verdict, the ICP, the anti-ICP with
  the best customers each exclusion would wrongly drop, tiers with expected
  outcomes, sample accounts per tier, model version, data fingerprint, date.
  Below: cohort contrast, SHAP summaries, a dependence plot per criterion with
  its threshold, calibration and gains, per-criterion statistics, stability and
  fidelity, unconfirmed criteria, warnings, changes since the last champion.
* ``criteria.md``: the same first page in Markdown, for a wiki or a CRM note.
* ``criteria.json`` (the contract), ``contrast.csv``, ``scored.csv``, ``figures/*.png``.

Every user-provided string (account names, category values) is escaped in HTML
by Jinja2's autoescape. The folder is built next to its destination and renamed
into place, so a reader never sees half a report.
"""

from __future__ import annotations

import base64
import io
import math
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from icpml import plots
from icpml.cohorts import BEST, MIDDLE
from icpml.errors import output_error

if TYPE_CHECKING:
    from icpml.pipeline import Discovery

__all__ = ["write_report", "render_html", "render_markdown", "report_context"]


# ----------------------------------------------------------------------------- formatting
def _pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.0%}"


def _lift(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}x"


def _ci(ci) -> str:
    if not ci or any(v is None or not math.isfinite(v) for v in ci):
        return "n/a"
    return f"{ci[0]:.2f}-{ci[1]:.2f}"


def _num(x, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def _pval(x) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("icpml", "templates"),
    # every HTML template is escaped (names, category values and criteria are user data);
    # the Markdown one is not HTML. select_autoescape(["html"]) would miss "report.html.j2".
    autoescape=lambda name: bool(name) and name.endswith((".html", ".html.j2")),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_ENV.filters.update(pct=_pct, lift=_lift, ci=_ci, num=_num, pval=_pval)


def _md_escape(value):
    """Markdown output: user strings can neither inject HTML nor break a table row."""
    if not isinstance(value, str):
        return value
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " "))


_MD_ENV = _ENV.overlay(finalize=_md_escape)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    fig.clf()
    return buf.getvalue()


def _figures(res: Discovery) -> dict[str, bytes]:
    """Render every figure once (PNG bytes by file name)."""
    figs = {"shap_fit.png": _png(plots.shap_summary(res.fit_explanation))}
    if res.churn_explanation is not None:
        figs["shap_churn.png"] = _png(plots.shap_summary(res.churn_explanation,
                                                         title="What moves churn risk"))
    figs["contrast.png"] = _png(plots.cohort_contrast_plot(res.contrast))
    figs["calibration_fit.png"] = _png(plots.calibration_plot(res.fit.holdout,
                                                              title="Fit model calibration"))
    if res.churn is not None:
        figs["calibration_churn.png"] = _png(plots.calibration_plot(
            res.churn.holdout, title="Churn model calibration"))
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


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60]


def report_context(res: Discovery, figures: dict[str, bytes] | None = None) -> dict:
    """Everything the templates show, as plain values."""
    cfg, cs = res.config, res.criteria
    name_col = cfg.columns.name
    samples = {}
    k = cfg.report.sample_accounts_per_tier
    scored = res.scored
    for tier in ("Tier 1", "Tier 2", "Tier 3", "Excluded"):
        rows = scored[scored["tier"] == tier].sort_values("fit_score", ascending=False,
                                                          kind="stable").head(k)
        names = (res.accounts.set_index(cfg.columns.id)[name_col].reindex(rows[cfg.columns.id])
                 .tolist() if name_col else [None] * len(rows))
        samples[tier] = [
            {"id": r[cfg.columns.id], "name": n if isinstance(n, str) else "",
             "fit_score": r["fit_score"],
             "why": r["exclusion_reasons"] if tier == "Excluded" else r["top_reasons"]}
            for (_, r), n in zip(rows.iterrows(), names, strict=True)
        ]
    dep = {c.column: f"dependence_{_safe(c.column)}.png" for c in cs.icp + cs.anti_icp}
    return {
        "title": f"{cfg.name}: Ideal Customer Profile",
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "run_id": res.run_id,
        "model_versions": res.model_versions,
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
        "samples": samples,
        "fit": res.fit,
        "churn": res.churn,
        "contrast": res.contrast.head(20).to_dict(orient="records"),
        "stability": cs.meta.get("stability") or {},
        "fidelity": cs.meta.get("fidelity") or {},
        "warnings": list(dict.fromkeys(res.warnings + cs.warnings)),
        "retrain": res.retrain,
        "dependence": dep,
        "best_q": cfg.cohorts.best_quantile,
        "worst_q": cfg.cohorts.worst_quantile,
        "outcomes": [f"{m.column} ({m.direction} is better, weight {m.weight:g})"
                     for m in cfg.columns.outcomes],
        "img": {k: "data:image/png;base64," + base64.b64encode(v).decode()
                for k, v in (figures or {}).items()},
    }


def render_html(res: Discovery, figures: dict[str, bytes] | None = None) -> str:
    """The self-contained HTML report as a string."""
    figures = _figures(res) if figures is None else figures
    return _ENV.get_template("report.html.j2").render(**report_context(res, figures))


def render_markdown(res: Discovery) -> str:
    """The one-page Markdown summary (criteria.md) as a string."""
    return _MD_ENV.get_template("criteria.md.j2").render(**report_context(res, {}))


def write_report(res: Discovery, out_dir: Path | None = None) -> Path:
    """Write the report folder atomically and return its path.

    Parameters
    ----------
    res : Discovery
    out_dir : Path, optional
        Default: ``<report.dir>/<config name>_<run id[:8]>`` (``_local`` when untracked).
    """
    cfg = res.config
    if out_dir is None:
        suffix = res.run_id[:8] if res.run_id else "local"
        out_dir = cfg.resolve(cfg.report.dir) / f"{_safe(cfg.name)}_{suffix}"
    out_dir = Path(out_dir)
    figures = _figures(res)
    tmp = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
        (tmp / "figures").mkdir()
        for name, data in figures.items():
            (tmp / "figures" / name).write_bytes(data)
        (tmp / "report.html").write_text(render_html(res, figures), encoding="utf-8")
        (tmp / "criteria.md").write_text(render_markdown(res), encoding="utf-8")
        (tmp / "criteria.json").write_text(res.criteria.to_json(), encoding="utf-8")
        res.contrast.to_csv(tmp / "contrast.csv", index=False)
        res.scored.to_csv(tmp / "scored.csv", index=False)
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException as err:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise output_error(out_dir, err) from None
        raise
    return out_dir
