"""Exact, faster ``predict_proba`` for icpml's fitted model pipelines.

Why: scoring a million prospects spends most of its time in two places that
scikit-learn does generically and icpml can do for its own pipeline shape
(numbers passed through + one one-hot encoder per categorical column, then a
``HistGradientBoostingClassifier`` without categorical splits):

* **Encoding.** ``OneHotEncoder.transform`` maps every value through a Python
  dict and builds a float matrix that the trees then bin again. Here each
  categorical column is looked up once per row in a hash index of its known
  values and written straight as the two bins (0 or 1) the trees compare with.
* **Prediction.** The trees are evaluated on the binned ``uint8`` matrix
  (``TreePredictor.predict_binned``) rather than on raw floats, and with several
  threads on large chunks (see :func:`scoring_threads`).

What it computes is *identical* to ``pipeline.predict_proba``: the same bins
(``searchsorted`` on the bin thresholds is the binary search of
scikit-learn's ``_map_to_bins``), the same leaves, the same summation order
(baseline, then tree by tree). Because it reads private attributes of
scikit-learn, :meth:`FastPredictor.build` checks itself against the pipeline on a
probe table (every known category, an unseen one, missing values, numbers around
every threshold) and returns ``None`` - the caller then uses the pipeline - if
anything differs or the pipeline is not of the expected shape.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["FastPredictor", "scoring_threads"]

#: Chunks at least this large are predicted with several threads.
_PARALLEL_ROWS = 20_000


def scoring_threads(n_rows: int) -> int:
    """Threads for predicting ``n_rows``: ``ICPML_THREADS`` if set, else all cores on large chunks.

    Discovery stays on one thread (see :func:`icpml.models.openmp_threads`); scoring a
    large chunk gives every thread its own block of rows (on the 2-vCPU development machine,
    hyper-threads, that gains 1.3x).
    """
    from icpml.models import env_threads

    configured = env_threads()
    if configured is not None:
        return configured
    if n_rows < _PARALLEL_ROWS:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


class FastPredictor:
    """Binned, vectorised prediction of one fitted ``Pipeline([("prep", ...), ("clf", HGB)])``."""

    def __init__(self, pipeline) -> None:
        from icpml.features import MISSING

        pre, clf = pipeline.named_steps["prep"], pipeline.named_steps["clf"]
        self._missing = MISSING
        self._clf = clf
        mapper = clf._bin_mapper
        self._thresholds = mapper.bin_thresholds_
        self._mv = int(mapper.missing_values_bin_idx_)
        self._n_out = int(len(mapper.n_bins_non_missing_))
        self._numeric: list[tuple[str, int]] = []       # (column, output index)
        self._categorical: list[tuple[str, pd.Index, np.ndarray, int, np.ndarray, np.ndarray]] = []
        for name, trans, cols in pre.transformers_:
            if name == "remainder":
                continue
            sl = pre.output_indices_[name]
            if name == "num":
                self._numeric += [(c, sl.start + k) for k, c in enumerate(cols)]
                continue
            enc = trans.steps[-1][1]
            known = pd.Index(np.asarray(enc.categories_[0], dtype=object))
            # where each known value (and, last, an unseen one) lands among the outputs:
            # asking the encoder itself keeps infrequent pooling exactly as it does it
            probe = np.append(known.to_numpy(), "\x00icpml-unseen\x00").reshape(-1, 1)
            hot = enc.transform(probe)
            slot = np.where(hot.any(axis=1), hot.argmax(axis=1), -1).astype(np.int64)
            width = sl.stop - sl.start
            # the bin of 0.0 and of 1.0 in each output column of this encoder
            zero = np.array([np.searchsorted(self._thresholds[sl.start + j], 0.0) for j in range(width)],
                            dtype=np.uint8)
            one = np.array([np.searchsorted(self._thresholds[sl.start + j], 1.0) for j in range(width)],
                           dtype=np.uint8)
            self._categorical.append((cols[0], known, slot, sl.start, zero, one))
        self._predictors = [p[0] for p in clf._predictors]
        self._baseline = float(np.ravel(clf._baseline_prediction)[0])

    @classmethod
    def build(cls, pipeline, columns: list[str]) -> FastPredictor | None:
        """A checked fast predictor for ``pipeline``, or ``None`` to use the pipeline itself."""
        try:
            clf = pipeline.named_steps["clf"]
            if clf.n_trees_per_iteration_ != 1 or np.any(clf._bin_mapper.is_categorical_):
                return None
            fast = cls(pipeline)
            probe = fast._probe(columns)
            expected = pipeline.predict_proba(probe)[:, 1]
            got = fast.predict_proba(probe, n_threads=1)
            if got.shape != expected.shape or not np.array_equal(got, expected):
                log.debug("fast predictor disagrees with the pipeline; using the pipeline")
                return None
            return fast
        except Exception as err:  # private scikit-learn attributes changed: be slow, not wrong
            log.debug("fast predictor unavailable (%s); using the pipeline", err)
            return None

    def _probe(self, columns: list[str]) -> pd.DataFrame:
        """Rows that visit every bin edge, every known category, unseen values and missing."""
        n = 64
        for _, known, *_ in self._categorical:
            n = max(n, len(known) + 2)
        for _, j in self._numeric:
            n = max(n, 3 * len(self._thresholds[j]) + 2)
        rng = np.random.default_rng(0)
        data = {}
        for c, j in self._numeric:
            t = np.asarray(self._thresholds[j], dtype=float)
            vals = np.concatenate([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), [np.nan, np.inf]])
            data[c] = rng.permutation(np.resize(vals, n))
        for c, known, *_ in self._categorical:
            vals = [v for v in known.tolist() if v != self._missing] + ["\x00unseen\x00", None]
            data[c] = pd.Series(rng.permutation(np.resize(np.array(vals, dtype=object), n)),
                                dtype="string")
        return pd.DataFrame(data)[[c for c in columns if c in data]]

    def binned(self, X: pd.DataFrame) -> np.ndarray:
        """The ``uint8`` bin matrix (Fortran order) the trees compare against."""
        n = len(X)
        B = np.empty((n, self._n_out), dtype=np.uint8, order="F")
        for c, j in self._numeric:
            x = X[c].astype(float).to_numpy()
            b = np.searchsorted(self._thresholds[j], x, side="left").astype(np.uint8)
            b[np.isnan(x)] = self._mv
            B[:, j] = b
        for c, known, slot, start, zero, one in self._categorical:
            # hash each row once (factorize), then read each distinct value's text
            # exactly as the pipeline's encoder does (astype("string"), missing named)
            codes, uniques = pd.factorize(X[c], use_na_sentinel=True)
            text = pd.Series(uniques).astype("string").fillna(self._missing).to_numpy(dtype=object)
            where = slot[known.get_indexer(np.append(text, self._missing))]  # -1 -> unseen slot
            width = len(zero)
            table = np.where(np.arange(width) == where[:, None], one, zero).astype(np.uint8)
            B[:, start:start + width] = table[codes]  # code -1 (missing) reads the appended row
        return B

    def predict_proba(self, X: pd.DataFrame, n_threads: int | None = None) -> np.ndarray:
        """Probability of the positive class, identical to ``pipeline.predict_proba(X)[:, 1]``.

        With ``n_threads`` > 1 the rows are cut into that many blocks, each predicted by its
        own Python thread (the trees release the GIL) with a single OpenMP thread: unlike an
        OpenMP team, threads that finish early do not spin, so a busy machine slows scoring
        down gracefully instead of several-fold. Each row's sum is the same either way.
        """
        threads = scoring_threads(len(X)) if n_threads is None else max(1, n_threads)
        B = self.binned(X)
        if threads == 1 or len(X) < 2 * threads:
            raw = self._raw(B)
        else:
            from concurrent.futures import ThreadPoolExecutor

            edges = np.linspace(0, len(X), threads + 1).astype(int)
            blocks = [np.asfortranarray(B[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
            with ThreadPoolExecutor(threads) as pool:
                raw = np.concatenate(list(pool.map(self._raw, blocks)))
        return self._clf._loss.predict_proba(raw)[:, 1]

    def _raw(self, B: np.ndarray) -> np.ndarray:
        raw = np.full(len(B), self._baseline)
        for p in self._predictors:
            raw += p.predict_binned(B, self._mv, 1)
        return raw
