"""How much to trust the criteria: stability under resampling, and fidelity to the model.

**Stability.** Criteria are refitted on bootstrap resamples of the non-held-out
accounts: each resample fits the fit and churn models on the bootstrap rows,
proposes candidates from their SHAP values, selects on the out-of-bag rows
(the rows the resample did not draw) and re-chooses and refines the cuts on the
drawn rows, as discovery does (a resample's unrefined bound would differ from the
final, refined one for no reason of the data). For every final
criterion we report how often a *matching* criterion reappears: same kind and the
same column(s), and a segment that agrees with the final one, i.e. a category-set
Jaccard >= 0.5 or a row-membership Jaccard >= 0.5 on the non-held-out accounts
(``industry in {SaaS, FinTech}`` matches ``industry in {SaaS, FinTech, Media}``;
``150 <= employees <= 600`` matches ``employees >= 140``; operators and bounds may
differ, the accounts selected must largely be the same). For the rule set we
report the mean Jaccard similarity between each resample's set and the final set
(matched criteria over the union), and the share of resamples in which every final
ICP criterion reappeared. A criterion that reappears in fewer than
``min_stability`` of the resamples is flagged unstable (tentative).

**Fidelity.** How well the readable tiers reproduce the fit model's ranking on
held-out accounts: the ROC AUC of the tier order (Tier 1 > Tier 2 > Tier 3 >
Excluded) for best vs worst, next to the model's own AUC, and the Spearman
correlation between tier order and fit score. The gap is what the rules leave out.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from icpml.cohorts import BEST, MIDDLE
from icpml.config import Config
from icpml.criteria import CriteriaSet, Criterion, select_criteria
from icpml.explain import explain
from icpml.models import TrainedModel, make_model, openmp_threads

__all__ = ["criteria_stability", "criteria_match", "fidelity", "TIER_ORDER"]

log = logging.getLogger(__name__)

TIER_ORDER = {"Tier 1": 3, "Tier 2": 2, "Tier 3": 1, "Excluded": 0}


#: Two criteria on the same column(s) agree when their category sets or their rows overlap this much.
MATCH_JACCARD = 0.5


def _jaccard(a: np.ndarray | set, b: np.ndarray | set) -> float:
    if isinstance(a, set):
        union = a | b
        return len(a & b) / len(union) if union else 1.0
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def criteria_match(final: Criterion, other: Criterion, final_rows: np.ndarray,
                   other_rows: np.ndarray) -> bool:
    """Whether ``other`` (from a resample) is the same criterion as ``final``.

    Same kind and the same set of columns, and the segments agree: category-set Jaccard
    >= 0.5 (single-column category criteria) or row-membership Jaccard >= 0.5, where
    ``final_rows`` / ``other_rows`` are the two criteria's boolean masks on the same accounts.
    """
    if final.kind != other.kind or sorted(final.columns) != sorted(other.columns):
        return False
    cat = ("in", "not_in", "==")
    if (not final.also and not other.also and final.op in cat and other.op == final.op
            and _jaccard(set(map(str, final.values)), set(map(str, other.values))) >= MATCH_JACCARD):
        return True
    return _jaccard(final_rows, other_rows) >= MATCH_JACCARD


def _fit_quick(name: str, X: pd.DataFrame, y: np.ndarray, kinds: dict[str, str],
               cfg: Config) -> TrainedModel:
    pipe = make_model(kinds, list(kinds), cfg.models)
    with openmp_threads():
        pipe.fit(X[list(kinds)], y)
    return TrainedModel(name=name, pipeline=pipe, columns=list(kinds), kinds=kinds)


def criteria_stability(df: pd.DataFrame, cohorts: pd.Series, split: pd.Series,
                       fit_kinds: dict[str, str], churn_kinds: dict[str, str] | None,
                       final: CriteriaSet, cfg: Config,
                       churned: pd.Series | None = None) -> dict:
    """Refit the criteria on bootstrap resamples (see the module docstring).

    Returns
    -------
    dict with ``n_resamples``, ``match`` (the matching rule in words), ``set_jaccard``
    (mean over resamples of matched criteria / union of both sets), ``icp_set_share``
    (share of resamples in which every final ICP criterion reappeared; without an
    ICP: None), ``per_criterion`` (description -> reappearance share) and ``unstable``
    (descriptions below ``criteria.min_stability``). Empty dict when
    ``stability_resamples`` is 0.
    """
    n = cfg.criteria.stability_resamples
    if n == 0:
        return {}
    pool = df.index[(split != "holdout").to_numpy()]
    rows = df.loc[pool]
    finals = final.icp + final.anti_icp
    final_masks = [c.mask(rows).to_numpy(bool) for c in finals]
    counts = [0] * len(finals)
    jaccards, whole = [], []
    done = 0
    for b in range(n):
        rng = np.random.default_rng(cfg.models.seed + 1000 + b)
        draw = rng.choice(len(pool), size=len(pool), replace=True)
        in_bag = pool[draw]
        oob = pool[np.setdiff1d(np.arange(len(pool)), draw)]
        boot = df.loc[in_bag].reset_index(drop=True)
        bc = cohorts.loc[in_bag].reset_index(drop=True)
        ends = (bc != MIDDLE).to_numpy()
        y = (bc == BEST).to_numpy()[ends]
        if len(np.unique(y)) < 2 or len(oob) < 20:
            continue
        fit = _fit_quick("fit", boot[ends], y, fit_kinds, cfg)
        uniq = df.loc[pd.Index(in_bag).unique()]
        churn_expl = None
        if churn_kinds is not None and churned is not None:
            yc = churned.loc[in_bag].to_numpy(bool)
            if len(np.unique(yc)) == 2:
                churn = _fit_quick("churn", boot, yc, churn_kinds, cfg)
                churn_expl = explain(churn, uniq)
        anti, icp, _ = select_criteria(
            explain(fit, uniq), churn_expl, {**fit_kinds}, list(fit_kinds), df.loc[oob],
            cohorts.loc[oob], select_churn=churned.loc[oob] if churned is not None else None,
            refine_rows=uniq, refine_cohort=cohorts.loc[uniq.index], cfg=cfg.criteria)
        found = anti + icp
        found_masks = [c.mask(rows).to_numpy(bool) for c in found]
        hit_final = [any(criteria_match(f, r, fm, rm) for r, rm in zip(found, found_masks, strict=True))
                     for f, fm in zip(finals, final_masks, strict=True)]
        hit_found = [any(criteria_match(f, r, fm, rm) for f, fm in zip(finals, final_masks, strict=True))
                     for r, rm in zip(found, found_masks, strict=True)]
        for i, h in enumerate(hit_final):
            counts[i] += h
        matched = min(sum(hit_final), sum(hit_found))
        union = len(finals) + len(found) - matched
        jaccards.append(matched / union if union else 1.0)
        whole.append(all(h for h, f in zip(hit_final, finals, strict=True) if f.kind == "icp"))
        done += 1
    if done == 0:
        return {}
    per = {c.describe(): counts[i] / done for i, c in enumerate(finals)}
    return {
        "n_resamples": done,
        "match": f"same kind and column(s); category-set or row Jaccard >= {MATCH_JACCARD}",
        "set_jaccard": float(np.mean(jaccards)),
        "icp_set_share": float(np.mean(whole)) if final.icp else None,
        "per_criterion": per,
        "unstable": [d for d, f in per.items() if f < cfg.criteria.min_stability],
    }


def fidelity(tiers: pd.Series, fit_score: pd.Series, cohorts: pd.Series) -> dict:
    """Tier order vs the fit model on the same (held-out) accounts."""
    order = tiers.astype(str).map(TIER_ORDER).astype(float)
    ends = (cohorts != MIDDLE).to_numpy()
    y = (cohorts == BEST).to_numpy()[ends]
    out = {"tiers_roc_auc": np.nan, "model_roc_auc": np.nan, "spearman_tier_vs_score": np.nan}
    if len(np.unique(y)) == 2:
        out["tiers_roc_auc"] = float(roc_auc_score(y, order.to_numpy()[ends]))
        out["model_roc_auc"] = float(roc_auc_score(y, fit_score.to_numpy()[ends]))
    if order.nunique() > 1:
        out["spearman_tier_vs_score"] = float(stats.spearmanr(order, fit_score).statistic)
    return out
