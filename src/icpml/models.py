"""The fit and churn classifiers: factories, training, honest validation.

Both are scikit-learn pipelines: the preprocessing of :mod:`icpml.features`
followed by a ``HistGradientBoostingClassifier`` (no native categorical splits,
so SHAP is exact). The **fit** model learns best vs worst cohort from targetable
columns only; the **churn** model learns churned vs retained from targetable
columns plus, optionally, post-sale columns.

:func:`train_model` reports two kinds of evidence: stratified k-fold cross
validation on the training rows (mean and spread of ROC AUC), and metrics on a
held-out split the model never saw: ROC AUC, PR AUC, Brier score, log loss, the
expected calibration error and a reliability curve. Everything is seeded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from icpml._runtime import env_threads
from icpml._stats import sample_by_class
from icpml.config import ModelsConfig
from icpml.features import make_preprocessor

if TYPE_CHECKING:  # fastpredict imports this module at run time (env_threads)
    from icpml.fastpredict import FastPredictor

log = logging.getLogger(__name__)


def openmp_threads():
    """Limit scikit-learn's OpenMP threads while icpml fits or predicts (default 1).

    Gradient boosting on a few thousand accounts gains nothing from more threads, and
    OpenMP threads spin while they wait: with two icpml processes on a 2-core machine
    (tests and a notebook, cron and a user) one 1,500-account discovery took 509 s
    instead of 10 s. One thread each: 5 s alone, 5 s side by side. Set ``ICPML_THREADS``
    to use more. (Scoring parallelises with Python threads instead: see
    :func:`icpml.fastpredict.scoring_threads`.)
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=env_threads() or 1, user_api="openmp")


def blas_threads():
    """Limit numpy's BLAS threads (OpenBLAS, MKL) while icpml discovers (default 1).

    The criteria search multiplies 0/1 masks (e.g. the pair search: atoms x rows times
    rows x atoms); its matrices are small and BLAS threads spin while they wait, as
    OpenMP's do. On a busy 2-core machine one pair search over 45,000 rows took 4.1 s of
    CPU with OpenBLAS's 2 threads and 0.6 s with one. The products are the same (a thread
    computes whole output blocks; sums of 0/1 values are exact). ``ICPML_THREADS`` sets
    more. Use as a context manager, or call it once (a worker process's initializer).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=env_threads() or 1, user_api="blas")


__all__ = ["make_model", "train_model", "TrainedModel", "classification_metrics"]


def make_model(kinds: dict[str, str], columns: list[str], cfg: ModelsConfig,
               n_rows: int | None = None) -> Pipeline:
    """Unfitted pipeline: preprocessing + gradient-boosted trees.

    The trees are scikit-learn's ``HistGradientBoostingClassifier`` (histogram
    gradient boosting, as LightGBM; Ke et al. 2017) on one-hot encoded
    categories, which ``shap.TreeExplainer`` explains exactly. With ``n_rows``
    (the training rows), ``min_samples_leaf`` is capped at ``max(3, n_rows // 16)``:
    on a few dozen accounts the configured leaf size would forbid every split and
    leave a constant model that explains nothing, and on 100-300 it forbids splitting
    off a category held by 5-10% of them (a planted segment of a small table).

    Parameters
    ----------
    kinds : dict of str to str
        Kind (``numeric``, ``categorical``, ``boolean``) of each column.
    columns : list of str
        Business columns the model reads, in order.
    cfg : ModelsConfig
        Tree settings and seed.
    n_rows : int, optional
        Training rows, to cap the leaf size on small data.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Steps ``prep`` (column transformer) and ``clf`` (the classifier), unfitted.

    Examples
    --------
    >>> from icpml.config import ModelsConfig
    >>> pipe = make_model({"employees": "numeric"}, ["employees"], ModelsConfig())
    >>> list(pipe.named_steps)
    ['prep', 'clf']
    """
    clf = HistGradientBoostingClassifier(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=_leaf_size(cfg.min_samples_leaf, n_rows),
        l2_regularization=cfg.l2_regularization,
        early_stopping=False,
        random_state=cfg.seed,
    )
    pre = make_preprocessor(kinds, columns, min_frequency=cfg.min_category_frequency)
    return Pipeline([("prep", pre), ("clf", clf)])


def classification_metrics(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict:
    """ROC AUC, PR AUC, Brier, log loss, ECE and the reliability curve for probabilities ``p``.

    Scores come from scikit-learn's metrics; the ECE (expected calibration
    error) is the mean gap between predicted and observed rates over quantile
    bins; the ROC AUC interval is a 95% stratified bootstrap (300 resamples,
    seeded).

    Parameters
    ----------
    y : numpy.ndarray
        0/1 targets, shape ``(n,)``.
    p : numpy.ndarray
        Predicted probabilities of class 1, shape ``(n,)`` (clipped to
        [1e-9, 1 - 1e-9]).
    n_bins : int, default 10
        Most reliability bins (fewer on small data: about 20 rows per bin).

    Returns
    -------
    dict
        ``n``, ``positive_rate``, ``roc_auc``, ``pr_auc``, ``brier``,
        ``log_loss``, ``ece``, ``calibration`` (list of ``[mean predicted,
        observed rate]`` per bin) and ``roc_auc_ci_low`` / ``roc_auc_ci_high``;
        the scores are NaN (and no interval) when ``y`` has one class only.
    """
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    out: dict = {"n": int(len(y)), "positive_rate": float(y.mean()) if len(y) else float("nan")}
    if len(np.unique(y)) < 2:
        out.update(roc_auc=float("nan"), pr_auc=float("nan"), brier=float("nan"),
                   log_loss=float("nan"), ece=float("nan"), calibration=[])
        return out
    bins = min(n_bins, max(2, len(y) // 20))
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    # expected calibration error over quantile bins (equal mass, so a plain mean)
    ece = float(np.mean(np.abs(frac_pos - mean_pred)))
    out.update(
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        brier=float(brier_score_loss(y, p)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        ece=ece,
        calibration=[[float(a), float(b)] for a, b in zip(mean_pred, frac_pos, strict=True)],
    )
    out["roc_auc_ci_low"], out["roc_auc_ci_high"] = _auc_interval(y, p)
    return out


def _auc_interval(y: np.ndarray, p: np.ndarray, n_boot: int = 300, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the ROC AUC from a stratified bootstrap of the rows.

    Positives and negatives are resampled separately (their counts stay fixed),
    so every resample has both classes; seeded, so the interval is reproducible.
    Each resample costs O(n) (counts over the sorted negatives, no sort per resample).
    """
    rng = np.random.default_rng(seed)
    pos, neg = p[y == 1], p[y == 0]
    order = np.argsort(neg, kind="stable")
    neg_sorted = neg[order]
    # for each positive: how many negatives (by sorted position) lie below it / tie with it
    below = np.searchsorted(neg_sorted, pos, side="left")
    upto = np.searchsorted(neg_sorted, pos, side="right")
    aucs = np.empty(n_boot)
    for i in range(n_boot):
        a = rng.integers(0, len(pos), size=len(pos))  # the draws of rng.choice(pos, len(pos))
        b = rng.integers(0, len(neg), size=len(neg))
        cum = np.zeros(len(neg) + 1, dtype=np.int64)
        np.cumsum(np.bincount(b, minlength=len(neg))[order], out=cum[1:])
        lo, hi = cum[below[a]], cum[upto[a]]
        # Mann-Whitney: P(score_pos > score_neg) + 0.5 P(tie)
        aucs[i] = (lo.sum() + 0.5 * (hi - lo).sum()) / (len(a) * len(b))
    low, high = np.quantile(aucs, [0.025, 0.975])
    return float(low), float(high)


@dataclass
class TrainedModel:
    """A fitted pipeline with its validation evidence.

    Parameters
    ----------
    name : str
        ``fit`` or ``churn``.
    pipeline : sklearn.pipeline.Pipeline
        Fitted on the training rows only (:func:`make_model`).
    columns : list of str
        Business columns the model reads.
    kinds : dict of str to str
        Kind of each column.
    cv : dict
        ``roc_auc_mean``, ``roc_auc_std``, ``folds`` and ``rows`` (the training rows
        cross-validated: all of them with ``cv_folds`` folds, or, with more training rows,
        a stratified sample of :data:`MAX_CV_ROWS` with at most
        :data:`MAX_CV_FOLDS_SAMPLED` folds).
    holdout : dict
        Metrics on the held-out rows (see :func:`classification_metrics`).
    kernel : FastPredictor, optional
        The compiled predictor, set only by :meth:`compile` (explicitly, e.g. before the
        model is registered) and pickled with the model. ``None``: predictions use the
        pipeline. A kernel compiled under another scikit-learn version or icpml format is
        recompiled when the model is unpickled (see :meth:`__setstate__`).
    train_rows : dict
        ``fitted`` (the rows the final model was fitted on: at most :data:`MAX_TRAIN_ROWS`,
        a sample by class) and ``total`` (the training rows); empty when the model was not
        trained by :func:`train_model`.
    """

    name: str
    pipeline: Pipeline
    columns: list[str]
    kinds: dict[str, str]
    cv: dict = field(default_factory=dict)
    holdout: dict = field(default_factory=dict)
    kernel: FastPredictor | None = field(default=None, repr=False, compare=False)
    train_rows: dict = field(default_factory=dict)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities as scikit-learn gives them, column 1 the positive class.

        Identical to ``pipeline.predict_proba(X[columns])``; computed as
        :meth:`predict_positive` (with :attr:`kernel` when there is one).

        Parameters
        ----------
        X : pandas.DataFrame
            Coerced accounts holding at least :attr:`columns` (n rows); not modified.

        Returns
        -------
        numpy.ndarray
            Float64 array of shape ``(n, 2)``: P(negative), P(positive) per row, the
            positive class being the best cohort (``fit``) or churn (``churn``).
        """
        p = self.predict_positive(X)
        proba = np.empty((len(p), 2))
        proba[:, 1] = p
        proba[:, 0] = 1 - p
        return proba

    def predict_positive(self, X: pd.DataFrame, codes: dict | None = None, *,
                         kernel=None) -> np.ndarray:
        """Probability of the positive class (best cohort, or churn), shape (n,).

        Identical to ``pipeline.predict_proba(X[columns])[:, 1]``, computed by the compiled
        ``kernel`` (default :attr:`kernel`; ``False``: the pipeline; compiled trees, several
        threads on large tables) when there is one. If the kernel fails here (e.g. numba
        cannot compile or cache), a warning names the reason (once per run) and the
        pipeline scores instead: the result is the same, only slower.

        Parameters
        ----------
        X : pandas.DataFrame
            Coerced accounts holding at least :attr:`columns` (n rows); not modified.
        codes : dict, optional
            Shared by models scoring the same ``X``, so each categorical column is hashed
            once (see :meth:`FastPredictor.inputs`); filled in place. Unused by the pipeline.
        kernel : FastPredictor or False, optional
            The compiled predictor to use; ``None`` (default) uses :attr:`kernel`,
            ``False`` forces the pipeline.

        Returns
        -------
        numpy.ndarray
            Float64 array of shape ``(n,)``: the positive-class probability (0-1) of each row.
        """
        kernel = self.kernel if kernel is None else kernel
        if kernel is not None and kernel is not False:
            try:
                return kernel.predict_positive(X, codes=codes)
            except Exception as err:  # e.g. numba cannot compile or cache here: slow, not wrong
                from icpml.fastpredict import warn_fallback

                warn_fallback(self.name, f"{type(err).__name__}: {err}")
        with openmp_threads():
            return self.pipeline.predict_proba(X[self.columns])[:, 1]

    def compile(self) -> TrainedModel:
        """Set :attr:`kernel` to a checked compiled predictor, in place.

        A current kernel (this format and scikit-learn version) is kept; otherwise
        :meth:`FastPredictor.build` compiles one, or sets ``None`` after a warning naming
        why it cannot be used (predictions then use the pipeline). Never raises for an
        unsupported pipeline.

        Returns
        -------
        TrainedModel
            This model (``self``), for chaining.
        """
        from icpml.fastpredict import FastPredictor

        if not FastPredictor.current(self.kernel):
            with openmp_threads():
                self.kernel = FastPredictor.build(self.pipeline, self.columns, self.name)
        return self

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a kernel of another format or scikit-learn version is recompiled.

        Models pickled before :attr:`kernel` was a field carried it as ``_fast``: such a
        kernel (whatever its format) is recompiled the same way.
        """
        from icpml.fastpredict import FastPredictor

        old = state.pop("_fast", None)
        kernel = state.get("kernel", old)
        state["kernel"] = kernel
        self.__dict__.update(state)
        for f in ("cv", "holdout", "train_rows"):
            self.__dict__.setdefault(f, {})
        if kernel is not None and not FastPredictor.current(kernel):
            self.kernel = None
            self.compile()

    def metrics(self) -> dict[str, float]:
        """Flat metrics for tracking (``cv_roc_auc_mean``, ``holdout_roc_auc``, ...).

        Returns
        -------
        dict of str to float
            The numeric entries of :attr:`cv` prefixed ``cv_`` and of :attr:`holdout`
            prefixed ``holdout_``.
        """
        m = {f"cv_{k}": v for k, v in self.cv.items() if isinstance(v, (int, float))}
        m.update({f"holdout_{k}": v for k, v in self.holdout.items()
                  if isinstance(v, (int, float))})
        return m


#: Cross-validation runs on a stratified sample of at most this many training rows (the
#: final model is fitted on all of them): k extra fits on 500,000 rows would cost minutes
#: and tell no more about the AUC's spread than 10,000 rows do.
MAX_CV_ROWS = 10_000

#: On such a sample, at most this many folds (``cv_folds`` when smaller). Each fold's fit
#: costs about as much as a fit on all 10,000 rows (the trees' fixed cost dominates); the
#: held-out split, with its bootstrap interval of the ROC AUC, is the main evidence there.
MAX_CV_FOLDS_SAMPLED = 3

#: The final model is fitted on a stratified sample (by class, seeded) of at most this many
#: training rows; cross-validation and the held-out metrics are unchanged. Boosting's cost
#: grows with the rows while its trees (15 leaves, at least 20 accounts each) stop changing
#: long before: the churn model of 100,000 accounts (52,500 training rows) scored a held-out
#: ROC AUC of 0.775 on all of them and 0.774 on 30,000, in 73% of the CPU. ``None``: all rows.
MAX_TRAIN_ROWS: int | None = 30_000

def _leaf_size(configured: int, n_rows: int | None) -> int:
    if n_rows is None:
        return configured
    return min(configured, max(3, n_rows // 16))


def train_model(name: str, X_train: pd.DataFrame, y_train: np.ndarray, X_hold: pd.DataFrame,
                y_hold: np.ndarray, kinds: dict[str, str], cfg: ModelsConfig, *,
                announce: bool = True) -> TrainedModel:
    """Cross-validate on the training rows, fit, and evaluate on the held-out rows.

    The final model is fitted on all training rows, or on a sample by class of
    :data:`MAX_TRAIN_ROWS` of them when there are more (``TrainedModel.train_rows``).

    Parameters
    ----------
    name : str
        ``fit`` or ``churn`` (labels the result).
    X_train, y_train : training rows and 0/1 targets.
    X_hold, y_hold : held-out rows and targets, never used for fitting.
    kinds : dict
        Kind of each column of ``X_train`` to use.
    cfg : ModelsConfig
    announce : bool, default True
        Log a leaf size lowered for few rows at INFO (else DEBUG: the cross-fitting
        refits, five per discovery, would repeat the line of the model already announced).

    Returns
    -------
    TrainedModel
    """
    columns = list(kinds)
    y_train = np.asarray(y_train).astype(int)
    pipe = make_model(kinds, columns, cfg, n_rows=len(y_train))
    leaf = pipe.named_steps["clf"].min_samples_leaf
    if leaf < cfg.min_samples_leaf:
        log.log(logging.INFO if announce else logging.DEBUG,
                "%s model: min_samples_leaf %d -> %d for %d training rows", name,
                cfg.min_samples_leaf, leaf, len(y_train))
    minority = int(min(np.bincount(y_train, minlength=2)))
    folds = min(cfg.cv_folds, minority)
    if len(y_train) > MAX_CV_ROWS:
        folds = min(folds, MAX_CV_FOLDS_SAMPLED)
    cv: dict = {"folds": folds}
    if folds >= 2:
        X_cv, y_cv = X_train[columns], y_train
        if len(y_cv) > MAX_CV_ROWS:  # the same estimate of the AUC's spread, at a fixed cost
            keep = sample_by_class(y_cv, MAX_CV_ROWS, cfg.seed)
            X_cv, y_cv = X_cv.iloc[keep], y_cv[keep]
        cv["rows"] = int(len(y_cv))
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=cfg.seed)
        with openmp_threads():
            scores = cross_val_score(clone(make_model(kinds, columns, cfg, n_rows=len(y_cv))),
                                     X_cv, y_cv, cv=skf, scoring="roc_auc", n_jobs=1)
        cv.update(roc_auc_mean=float(np.mean(scores)), roc_auc_std=float(np.std(scores)))
    X_fit, y_fit = X_train[columns], y_train
    if MAX_TRAIN_ROWS is not None and len(y_fit) > MAX_TRAIN_ROWS:
        keep = sample_by_class(y_fit, MAX_TRAIN_ROWS, cfg.seed)
        X_fit, y_fit = X_fit.iloc[keep], y_fit[keep]
        log.info("%s model: fitted on %d of %d training rows (a sample by class)", name,
                 len(y_fit), len(y_train))
    with openmp_threads():
        pipe.fit(X_fit, y_fit)
    model = TrainedModel(name=name, pipeline=pipe, columns=columns, kinds=kinds, cv=cv,
                         train_rows={"fitted": int(len(y_fit)), "total": int(len(y_train))})
    model.holdout = classification_metrics(y_hold, model.predict_positive(X_hold))
    return model
