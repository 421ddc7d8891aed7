"""icpml on the public datasets: the figures behind ``docs/results.md``.

Usage::

    python benchmarks/real_data.py            # all three (about 2 minutes on 2 cores)
    python benchmarks/real_data.py telco      # one

Runs ``discover()`` with each shipped config (``configs/<name>.yaml``, which
reads ``../shared/data``), without tracking or a report, and writes
``benchmarks/results/real_data.md`` and ``real_data.json``: per dataset the
cohorts, fit and churn ROC AUC (cross-validated, and held out with a 95%
bootstrap interval), the verdict, every criterion with its held-out evidence
and stability, the tiers and the fidelity of the rules to the model.
Datasets whose folder is absent are skipped with a message.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
DATASETS = ("olist", "olist_mql", "telco", "maven")


def _f(x, nd=2) -> str:
    return "n/a" if x is None or x != x else f"{x:.{nd}f}"


def _auc(h: dict) -> str:
    if not h:
        return "none"
    return (f"{_f(h['roc_auc'], 3)} [{_f(h.get('roc_auc_ci_low'))}, {_f(h.get('roc_auc_ci_high'))}]"
            f" (n={h['n']})")


def run_one(name: str) -> dict | None:
    from icpml import discover, load_config
    from icpml.data import load_source
    from icpml.errors import DataError

    cfg = load_config(PROJECT / "configs" / f"{name}.yaml").model_copy(
        update={"project_root": PROJECT})
    try:
        t0 = time.perf_counter()
        df, source = load_source(cfg)
        t_load = time.perf_counter() - t0
    except DataError as err:
        print(f"skip {name}: {err}", file=sys.stderr)
        return None
    t0 = time.perf_counter()
    res = discover(cfg, df)
    wall = time.perf_counter() - t0
    cs = res.criteria
    stab = cs.meta.get("stability") or {}
    per = stab.get("per_criterion", {})
    crit = []
    for c in cs.icp + cs.anti_icp + cs.unconfirmed:
        ev = c.evidence
        crit.append({
            "criterion": c.describe(), "kind": c.kind, "source": c.source,
            "confirmed": c not in cs.unconfirmed, "coverage": ev.get("coverage"),
            "best_rate": ev.get("best_rate"), "lift": ev.get("lift"), "lift_ci": ev.get("lift_ci"),
            "churn_inside": ev.get("churn_inside"), "churn_outside": ev.get("churn_outside"),
            "best_wrongly_excluded": ev.get("best_wrongly_excluded"), "q_value": ev.get("q_value"),
            "reappeared": per.get(c.describe()),
        })
    counts = res.cohorts.value_counts()
    return {
        "dataset": name, "source": source, "accounts": len(df),
        "cohorts": {k: int(counts.get(k, 0)) for k in ("best", "middle", "worst")},
        "split": {k: int(v) for k, v in res.split.value_counts().items()},
        "fit_cv": res.fit_model.cv, "fit_holdout": {k: v for k, v in res.fit_model.holdout.items()
                                              if k != "calibration"},
        "churn_cv": res.churn_model.cv if res.churn_model else {},
        "churn_holdout": {k: v for k, v in res.churn_model.holdout.items() if k != "calibration"}
        if res.churn_model else {},
        "verdict": cs.verdict, "icp_evidence": cs.icp_evidence, "criteria": crit,
        "stability_jaccard": stab.get("set_jaccard"), "fidelity": cs.meta.get("fidelity"),
        "tiers": res.tiers.to_dict(orient="records") if hasattr(res.tiers, "to_dict") else None,
        "top_fit_columns": res.fit_explanation.importance().head(5).round(3).to_dict(),
        "top_churn_columns": res.churn_explanation.importance().head(5).round(3).to_dict()
        if res.churn_explanation is not None else {},
        "warnings": res.warnings, "seconds": {"load": round(t_load, 2), "discover": round(wall, 1)},
    }


def to_markdown(r: dict) -> str:
    cv = r["fit_cv"]
    lines = [f"### {r['dataset']}", "",
             f"{r['accounts']:,} accounts; cohorts best {r['cohorts']['best']}, middle "
             f"{r['cohorts']['middle']}, worst {r['cohorts']['worst']}; split "
             + ", ".join(f"{k} {v}" for k, v in sorted(r["split"].items())) + ".", "",
             "| model | CV ROC AUC | held-out ROC AUC [95% CI] | PR AUC | Brier |",
             "| --- | --- | --- | ---: | ---: |",
             f"| fit (best vs worst) | {_f(cv.get('roc_auc_mean'), 3)} ± {_f(cv.get('roc_auc_std'), 3)}"
             f" | {_auc(r['fit_holdout'])} | {_f(r['fit_holdout'].get('pr_auc'))}"
             f" | {_f(r['fit_holdout'].get('brier'), 3)} |"]
    if r["churn_holdout"]:
        c = r["churn_cv"]
        lines.append(f"| churn | {_f(c.get('roc_auc_mean'), 3)} ± {_f(c.get('roc_auc_std'), 3)}"
                     f" | {_auc(r['churn_holdout'])} | {_f(r['churn_holdout'].get('pr_auc'))}"
                     f" | {_f(r['churn_holdout'].get('brier'), 3)} |")
    lines += ["", f"**Verdict:** {r['verdict']['message']}", ""]
    if r["criteria"]:
        lines += ["| criterion | status | coverage | best rate | lift [95% CI] | churn in / out "
                  "| best wrongly dropped | q | reappeared |",
                  "| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
        for c in r["criteria"]:
            status = ("ICP" if c["kind"] == "icp" else "anti-ICP") if c["confirmed"] else "unconfirmed"
            ci = c["lift_ci"] or [None, None]
            wd = _f(c["best_wrongly_excluded"]) if c["kind"] == "anti_icp" else ""
            lines.append(
                f"| `{c['criterion']}` | {status} | {_f(c['coverage'])} | {_f(c['best_rate'])} | "
                f"{_f(c['lift'])} [{_f(ci[0])}, {_f(ci[1])}] | {_f(c['churn_inside'])} / "
                f"{_f(c['churn_outside'])} | {wd} | {_f(c['q_value'], 3)} | "
                f"{_f(c['reappeared']) if c['reappeared'] is not None else 'n/a'} |")
        lines.append("")
    fid = r.get("fidelity") or {}
    if fid:
        lines.append(f"Fidelity: tier order ROC AUC {_f(fid.get('tiers_roc_auc'))} vs the model's "
                     f"{_f(fid.get('model_roc_auc'))}. Stability (mean Jaccard over resamples): "
                     f"{_f(r['stability_jaccard'])}.")
    lines.append(f"Top fit columns (mean |SHAP|): {', '.join(f'{k} {v}' for k, v in r['top_fit_columns'].items())}.")
    if r["top_churn_columns"]:
        lines.append(f"Top churn columns: {', '.join(f'{k} {v}' for k, v in r['top_churn_columns'].items())}.")
    lines.append(f"Time: load {r['seconds']['load']} s, discover {r['seconds']['discover']} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or list(DATASETS)
    results = [r for r in (run_one(n) for n in names) if r is not None]
    if not results:
        print("no dataset found under ../shared/data", file=sys.stderr)
        return 3
    md = "# icpml on the public datasets (generated by benchmarks/real_data.py)\n\n" + "\n".join(
        to_markdown(r) for r in results)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    from icpml._io import atomic_write_text as write_text

    write_text(out / "real_data.md", md)
    write_text(out / "real_data.json", json.dumps(results, indent=1, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
