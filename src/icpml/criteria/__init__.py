"""From SHAP values to ICP inclusion and anti-ICP exclusion criteria, with evidence.

Method
------
The fit model (best vs worst) has learned, per business column, how each value
moves an account towards the best cohort; its grouped SHAP values
(:mod:`icpml.explain`) are that shape. We turn the shape into readable criteria
in three steps that never share rows:

1. **Propose** (SHAP on the model's own training + selection rows). For the
   columns with the largest mean *positive* SHAP and, separately, the largest
   mean *negative* SHAP (the anti-ICP side would otherwise crowd the ICP out of
   a single "top features" list):

   * numeric: sort accounts by value, average SHAP within quantile bins, and
     take each maximal run of bins whose mean SHAP is clearly positive (ICP) or
     negative (anti-ICP; also the churn model's positive side). A run in the
     middle gives a band with both bounds (``150 <= employees <= 600``); a run
     at an end gives one bound (``employees < 50``). Each bound is then moved
     to the exact split the trees use: within the two bins at the edge, the
     threshold that best separates high from low SHAP (a one-dimensional
     regression stump), rounded to the roundest number between the two
     observed values it falls between, so rounding never changes which
     training accounts match.
   * categorical / boolean (one-hot grouped): the mean SHAP of each category
     with enough support. The set of clearly positive categories is an ICP
     candidate (``industry in {SaaS, FinTech}``), as is its top category alone;
     each clearly negative category, and the negative set, are exclusion
     candidates. Missing values are the category ``(missing)``, so
     "tech stack unknown" can be a criterion. A numeric column's missing values
     become an ``is_missing`` candidate when they carry signal.

   "Clearly" means the mean exceeds ``tau = max(0.02, 0.1 * mean |SHAP|)`` of
   that column in log-odds; the real filter is step 2.

   **Interactions.** SHAP values are per account, so the same reading restricted
   to the accounts of a segment shows how each column acts *there*
   (:func:`conditional_candidates`). For the strongest exclusion candidates A,
   the exclusion candidates read inside A's accounts give pairs ``A and B``
   (``requires_onprem = True and employees < 200``), kept as candidates only if
   B's own SHAP is clearly worse with A than without it (more than ``tau`` and at
   least twice as bad): two shortfalls that merely add up ("not Salesforce and
   small") are not an interaction. On the ICP side the ICP is already a
   conjunction; what interactions need there is that each next criterion is read
   inside the segment chosen so far (a size band that pays off only within some
   industries is diluted in the SHAP of all accounts, plain within them). That
   cannot start when neither part helps on its own (A pays off only with B and
   hurts without it, the main effects cancel): for those, a pair search
   (:func:`icp_pair_candidates`) over the columns with the largest mean |SHAP|
   scores every combination of two single conditions (decile cuts, interior bands
   between two decile cuts from 2,000 searched rows, categories, sets of levels) by
   WRAcc on the non-held-out rows, keeps pairs whose parts are flat alone, takes
   the best cell of the 2x2 the parts form and fits each part given the other.
   The search is cross-fitted (:func:`crossfit_pairs`): run again on K folds, each
   pair is judged on the rows its fold's search did not see, so every account is
   evidence once; the search itself is judged by each fold's own top pair on its
   left-out rows, one honest hypothesis however many column pairs and shapes it
   tried (what lets a pair lead an ICP the greedy left empty). Step 2 then also
   builds an ICP that starts with the best pair significant out of fold and lets
   the greedy work within it (a pair covering a few percent of the accounts is too
   rare among the few hundred selection rows of a 2k-customer table to pass
   there), and keeps it instead of the plain greedy's
   when its segment is the more significant on the non-held-out rows. When it loses
   that comparison (the greedy's first cut was chosen on some of those rows, and a
   chance cut can win there) and none of the greedy's criteria holds up in step 3,
   the pair-led ICP gets its held-out test instead. A pair is
   confirmed like any other criterion; the column pairs searched count as
   hypotheses in the correction.

2. **Select** (the selection split: rows the model was not fitted on).
   Exclusions first: a fit-side exclusion is kept if accounts matching it reach
   the best cohort at most half as often as average (lift <= 0.5) *and* fall in
   the worst cohort significantly more than ``min_exclusion_worst_lift`` times as
   often as average (one-sided binomial test), so an exclusion marks accounts
   that are actively bad, not merely outside the ICP; a churn-side exclusion if
   they churn significantly more than 1.5 times as often as the rest; both only
   if they drop at most ``max_wrongly_excluded`` of the best accounts (counted in
   whole accounts, rounded up). The
   strongest exclusion goes first; each later one must still pass on the
   accounts the earlier ones left in, so proxies of one cause drop out.
   An interaction whose part is itself kept is dropped as redundant.
   Then the ICP, greedily, among accounts no exclusion removes: every candidate
   is tested *within the current segment* (matching vs not matching, one-sided
   Fisher test at ``alpha``); among the columns with a passing candidate, the
   one the model's SHAP says adds most inside the segment is taken, with its
   most significant cut; new candidates are read from the SHAP inside the new
   segment; one criterion per column, until nothing passes. The selection rows
   decide whether and where to cut; the SHAP on many more rows decides which
   column when several pass (on a few dozen rows a strong and a weak column can
   tie by chance). Once the columns are settled, each cut is chosen again given
   all the other criteria (a band picked before the industries it matters in is
   too wide). Finally, on outcome labels of the non-held-out rows: each ICP
   criterion's bounds (:func:`fit_band`) or category set (:func:`fit_set`) is
   chosen for the segment *given the other criteria*: the change points of the
   best rate inside the others' segment (largest chi-square, as a tree splits),
   not the tightest interval; the model's cut stays unless the data clearly
   prefer another, and each edge is shown as the roundest number among the cuts
   the data cannot tell from the best one (600, not 688). Each exclusion bound
   is refined locally (within the accounts ranked near the bound, the split that
   best separates worst from the rest).
   Tree ensembles smear a step over several nearby thresholds; the outcomes say
   where it really is.

3. **Confirm and measure** (the held-out split: never used to fit or to
   select). For every kept criterion, and for the combined ICP (all inclusions,
   no exclusion) and anti-ICP (any exclusion): coverage, best-cohort rate, lift
   with a bootstrap confidence interval, WRAcc, churn inside vs outside, and for
   exclusions the share of best customers wrongly excluded. An ICP criterion
   must improve the segment *given the others* on these rows (Fisher test
   inside the accounts meeting every other ICP criterion and no exclusion; a lone
   ICP criterion is tested alone): of two correlated columns, the one that only rode
   along with the cause adds nothing there, and a condition of a conjunction need
   not pay off on its own. P-values are corrected with Benjamini-Hochberg across *every candidate
   proposed* in step 1 (the ones not selected count with p = 1); a criterion that
   is not confirmed (q >= alpha) is dropped (the weakest ICP criterion first, the
   others tested again without it) and listed as unconfirmed. If no
   inclusion is confirmed, or the ICP's lift interval includes 1, the verdict
   says no reliable ICP was found, and why.

**Small data: K-fold cross-fitting.** Below :data:`CROSSFIT_BELOW` accounts, or
when the held-out split is too small to confirm a segment twice as good as average
(:func:`use_crossfit`), a three-way split leaves too few rows for each step (300
accounts leave about 90 held-out). Then steps 1-2 run in each of K folds on the other
K-1 folds (models refit there), the fold's criteria are applied to its left-out
accounts, and the pooled out-of-fold memberships are the evidence: every account
serves as held-out evidence once. The final criteria come from the same procedure on
all accounts; the interval is a bootstrap of the pooled out-of-fold accounts (see
:func:`_derive_crossfit`). There the selection rows are the models' own training
rows, so steps 1-2 change (``select_criteria(..., crossfit=True)``): plain per-category
best / worst contrasts are proposed beside SHAP's candidates (the trees cannot split a
category of a few dozen accounts); the ICP greedy takes the column whose candidate is
most significant, its p-value multiplied by the number of cuts of its kind (SHAP
strength measured on the training rows adds nothing there), and its first criterion must
stay significant after that multiplication (the cut was searched on the rows that test
it; without this, null tables of a few hundred accounts let chance category sets through,
chosen alike by folds that share most of their rows); exclusion candidates must
pass Benjamini-Hochberg across all of them before the greedy, which takes the most
significant first. When no exclusion is confirmed, the verdict says how much worse than
average a 10% group would have to be to be detected at this size.

Only targetable columns reach step 1: outcomes, post-sale columns, identifiers
and leakage suspects are removed before (see :mod:`icpml.features`).

**Layout.** Each module owns one concept and imports only from the ones above it:

==========================  ============================================================
:mod:`~icpml.criteria.rule`      :class:`Criterion` and :class:`CriteriaSet`, with ONE operator
                                 table that gives each criterion's mask, SQL (sqlglot), pandas
                                 and words
:mod:`~icpml.criteria.evidence`  held-out evidence of a segment (:func:`segment_evidence`)
:mod:`~icpml.criteria.bands`     numeric bounds and category sets fitted given the others
:mod:`~icpml.criteria.propose`   candidates from grouped SHAP, including ICP pairs
:mod:`~icpml.criteria.select`    the ICP conjunction and the anti-ICP exclusions
:mod:`~icpml.criteria.confirm`   confirmation (held-out or cross-fitted), verdict, stability
==========================  ============================================================
"""

from __future__ import annotations

from icpml.criteria.bands import fit_band
from icpml.criteria.confirm import CriteriaSplit, apply_stability, derive_criteria, use_crossfit
from icpml.criteria.evidence import detectable_lift, segment_evidence
from icpml.criteria.propose import (
    conditional_candidates,
    crossfit_pairs,
    icp_pair_candidates,
    interaction_candidates,
    propose_candidates,
)
from icpml.criteria.rule import SCHEMA_VERSION, CriteriaSet, Criterion
from icpml.criteria.select import select_criteria

__all__ = ["Criterion", "CriteriaSet", "CriteriaSplit", "derive_criteria", "use_crossfit", "fit_band", "select_criteria", "segment_evidence",
           "SCHEMA_VERSION", "propose_candidates", "apply_stability", "detectable_lift", "conditional_candidates", "interaction_candidates",
           "icp_pair_candidates", "crossfit_pairs"]
