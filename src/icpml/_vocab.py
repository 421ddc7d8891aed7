"""The shared vocabulary of icpml: one spelling of each name every layer uses.

A leaf module: it imports nothing from icpml, so any module may import it.

* :data:`VERSION`: icpml's version (``icpml.__version__``), stamped into criteria.json,
  the cache key and the MLflow tags.
* :data:`TIERS`: the tier names, best first (their meaning: :data:`icpml.scoring.TIER_DEFINITIONS`).
* :data:`MISSING`: how a missing categorical value reads in SHAP groups, criteria and reasons.
* :data:`BEST`, :data:`MIDDLE`, :data:`WORST`: the cohort labels.
"""

from __future__ import annotations

__all__ = ["VERSION", "TIERS", "TIER_1", "TIER_2", "TIER_3", "EXCLUDED", "MISSING",
           "BEST", "MIDDLE", "WORST"]

VERSION = "0.1.0"

TIER_1, TIER_2, TIER_3, EXCLUDED = "Tier 1", "Tier 2", "Tier 3", "Excluded"
#: the tiers in order, best first
TIERS = [TIER_1, TIER_2, TIER_3, EXCLUDED]

#: the category a missing value becomes (categorical columns, criteria values, reasons)
MISSING = "(missing)"

BEST, MIDDLE, WORST = "best", "middle", "worst"
