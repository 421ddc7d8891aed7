"""Exact, fast ``predict_proba`` for icpml's fitted model pipelines.

Why: scoring a million prospects with scikit-learn spends its time walking trees (80-110 ns
per tree per row on the development machine, mostly mispredicted branches) and one-hot
encoding through Python dicts. icpml's pipelines have one shape (numbers passed
through + one one-hot encoder per categorical column, then a
``HistGradientBoostingClassifier`` without categorical splits), so it compiles each
fitted model once into lookup tables:

* **Encoding.** Each categorical column is hashed once per row (``pd.factorize``, shared
  by the fit and churn models) and each distinct value is mapped to its one-hot slot by
  asking the fitted encoder itself, so infrequent pooling and unseen values behave exactly
  as in the pipeline.
* **Trees.** :func:`icpml._trees.raw_scores` evaluates the ensemble with QuickScorer's
  leaf bit masks, vectorised over rows (see that module): 3-4 ns per tree per row, in a
  compiled kernel that releases the GIL, so large chunks are split across threads
  (:func:`scoring_threads`).

What it computes is *identical* to ``pipeline.predict_proba``: each split compares the
value with the split's own threshold (``x <= threshold``, missing values as the split
says), the leaf reached is the same, and each row's sum runs in the same order
(baseline, then tree by tree), and the link function (``"logit"``, scikit-learn's
``expit``) is applied last. Because it reads private attributes of scikit-learn
(``_predictors``, ``_baseline_prediction``, ``_bin_mapper``, ``_loss.link``) it is guarded:

* the tested scikit-learn range is pinned in ``pyproject.toml``, and a CI job
  (``.ci/newest-sklearn``) runs the bit-identity tests against the newest release;
* :meth:`FastPredictor.compile` checks the result against the pipeline on a probe table
  (every known category, an unseen one, missing values, numbers at and around every
  threshold) and raises :class:`KernelUnavailable` naming the reason if anything differs,
  if the pipeline is not of the expected shape, or if the kernel cannot be compiled;
* the predictor records the scikit-learn version it was compiled under
  (:attr:`FastPredictor.sklearn_version`) and :meth:`FastPredictor.current` is false under
  any other version, so a model unpickled elsewhere is recompiled, never trusted;
* only plain arrays, numbers and strings are stored: no scikit-learn object (its private
  ``_loss``) is pickled with a registered model;
* every fallback to scikit-learn's ``predict_proba`` is a WARNING naming the reason, logged
  once per reason and process (:func:`warn_fallback`).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["FastPredictor", "KernelUnavailable", "scoring_threads", "warn_fallback", "LINKS"]

#: Link functions the kernel applies to the raw score: scikit-learn's link class -> name.
LINKS = {"LogitLink": "logit"}


class KernelUnavailable(Exception):
    """The compiled predictor cannot stand in for the pipeline; the message says why."""


#: Fallback reasons already warned about in this process (one warning each per run).
_WARNED: set[str] = set()


def warn_fallback(model: str, reason: str) -> None:
    """Log, once per ``reason`` in this process, that ``model`` scores with scikit-learn.

    The scores are the same (the pipeline's own ``predict_proba``); only the speed differs.
    Reasons are compared by their first line; a repeated one logs nothing.

    Parameters
    ----------
    model : str
        Label of the model in the warning (``"fit"``, ``"churn"``).
    reason : str
        Why the compiled kernel is unavailable (a :class:`KernelUnavailable` message);
        only its first line is logged.
    """
    first_line = str(reason).splitlines()[0] if str(reason) else type(reason).__name__
    if first_line in _WARNED:
        return
    _WARNED.add(first_line)
    log.warning("%s model: compiled scoring unavailable (%s); scoring with scikit-learn's "
                "predict_proba (same scores, slower)", model, first_line)


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__

#: Chunks at least this large are predicted with several threads.
_PARALLEL_ROWS = 20_000


def scoring_threads(n_rows: int) -> int:
    """Threads for predicting ``n_rows``: ``ICPML_THREADS`` if set, else all cores on large chunks.

    Discovery stays on one thread (see :func:`icpml.models.openmp_threads`); scoring a
    large chunk gives every thread its own block of rows (on the 2-vCPU development machine,
    hyper-threads, that gains 1.3x).

    Parameters
    ----------
    n_rows : int
        Rows about to be predicted.

    Returns
    -------
    int
        ``ICPML_THREADS`` when set; else 1 below 20,000 rows, and up to 8 (the
        CPU count) above.
    """
    from icpml._runtime import env_threads

    configured = env_threads()
    if configured is not None:
        return configured
    if n_rows < _PARALLEL_ROWS:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


class FastPredictor:
    """Compiled, exact prediction of one fitted ``Pipeline([("prep", ...), ("clf", HGB)])``.

    Its state is plain arrays, numbers and strings (a few hundred KB), pickled with its
    model so that a registered model scores without recompiling; :meth:`current` tells
    whether an unpickled one was compiled by this format and this scikit-learn version.
    It holds no pool, cache or scikit-learn object: threads are per call (or the caller's
    executor), and it is not modified after :meth:`compile`. Build it with
    :meth:`compile` (checked against the pipeline) or :meth:`build`, not directly.

    Parameters
    ----------
    pipeline : Pipeline
        A fitted ``Pipeline([("prep", ColumnTransformer), ("clf", HistGradientBoostingClassifier)])``
        whose tables are compiled (not kept).

    Attributes
    ----------
    link : str
        The inverse link applied to the raw score: ``"logit"`` (``expit``).
    sklearn_version : str
        The scikit-learn version the pipeline was compiled under.

    Raises
    ------
    KernelUnavailable
        The classifier's link is not one the kernel applies, a feature has more than
        65,535 values, a tree has more than 64 leaves, or a split's right side is not
        one range of values.
    """

    #: Bumped whenever the attributes change; older pickles are rebuilt, not used.
    FORMAT = 3

    def __init__(self, pipeline) -> None:
        from icpml._vocab import MISSING

        pre, clf = pipeline.named_steps["prep"], pipeline.named_steps["clf"]
        self._format = self.FORMAT
        self._missing = MISSING
        self.sklearn_version = _sklearn_version()
        link = type(getattr(clf._loss, "link", None)).__name__
        if link not in LINKS:
            raise KernelUnavailable(f"link function {link} is not one the kernel applies")
        self.link = LINKS[link]
        # each output column of the preprocessor -> (feature, one-hot slot or -1 for a number)
        where: dict[int, tuple[int, int]] = {}
        self._numeric: list[str] = []
        self._categorical: list[tuple[str, pd.Index, np.ndarray]] = []  # column, known, slot+1
        for name, trans, cols in pre.transformers_:
            if name == "remainder":
                continue
            sl = pre.output_indices_[name]
            if name == "num":
                for k, c in enumerate(cols):
                    where[sl.start + k] = (len(self._numeric), -1)
                    self._numeric.append(c)
                continue
            enc = trans.steps[-1][1]
            known = pd.Index(np.asarray(enc.categories_[0], dtype=object))
            # where each known value (and, last, an unseen one) lands among the outputs:
            # asking the encoder itself keeps infrequent pooling exactly as it does it
            probe = np.append(known.to_numpy(), "\x00icpml-unseen\x00").reshape(-1, 1)
            hot = enc.transform(probe)
            slot = np.where(hot.any(axis=1), hot.argmax(axis=1) + 1, 0).astype(np.int32)
            self._categorical.append((cols[0], known, slot))
            for j in range(sl.stop - sl.start):
                where[sl.start + j] = (-len(self._categorical), j)  # resolved below
        n_num = len(self._numeric)
        where = {j: (f if f >= 0 else n_num - f - 1, s) for j, (f, s) in where.items()}
        self._compile([p[0].nodes for p in clf._predictors], where, n_num)
        self._baseline = float(np.ravel(clf._baseline_prediction)[0])

    def _compile(self, trees: list[np.ndarray], where: dict[int, tuple[int, int]],
                 n_num: int) -> None:
        """The split tables of :func:`icpml._trees.raw_scores` (see its module docstring)."""
        cuts: list[set[float]] = [set() for _ in range(n_num)]
        for nodes in trees:
            for node in nodes[nodes["is_leaf"] == 0]:
                f, s = where[int(node["feature_idx"])]
                if s < 0:
                    cuts[f].add(float(node["num_threshold"]))
        cuts_sorted = [np.array(sorted(c), dtype=float) for c in cuts]
        # values of each feature's index: numbers 0..len(cuts) (+1 = missing), slots 0..width
        size = [len(c) + 2 for c in cuts_sorted] + [int(slot.max()) + 1 for *_, slot in self._categorical]
        if max(size) > np.iinfo(np.uint16).max:
            raise KernelUnavailable(f"a feature with {max(size)} values")
        widest = max((len(t) + 1) // 2 for t in trees)
        if widest > 64:
            raise KernelUnavailable(f"trees with {widest} leaves (the kernel takes up to 64)")
        dtype = next(d for d, bits in ((np.uint16, 16), (np.uint32, 32), (np.uint64, 64)) if widest <= bits)
        feature, low, span, keep, tree_start = [], [], [], [], [0]
        leaf_values = np.zeros((len(trees), widest))
        for t, nodes in enumerate(trees):
            order = _leaves_in_order(nodes)
            leaf_values[t, :len(order)] = nodes["value"][order]
            below = _leaf_bits(nodes, order)
            for n in np.flatnonzero(nodes["is_leaf"] == 0):
                node = nodes[n]
                f, s = where[int(node["feature_idx"])]
                idx = np.arange(size[f])
                if s < 0:  # index i: i cuts below the value; the last index is missing
                    pos = int(np.searchsorted(cuts_sorted[f], node["num_threshold"]))
                    left = np.where(idx == size[f] - 1, bool(node["missing_go_to_left"]), idx <= pos)
                else:  # slot i: this one-hot column is 1.0 if i == s + 1, else 0.0
                    left = np.where(idx == s + 1, 1.0, 0.0) <= node["num_threshold"]
                right = np.flatnonzero(~left)
                if len(right) == 0:
                    continue  # every value goes left: the split rules nothing out
                if right[-1] - right[0] + 1 != len(right):
                    raise KernelUnavailable("a split whose right side is not one range of values")
                feature.append(f)
                low.append(right[0])
                span.append(right[-1] - right[0])
                keep.append(~below[int(node["left"])] & ((1 << widest) - 1))
            tree_start.append(len(feature))
        self._cuts = np.concatenate([np.zeros(0), *cuts_sorted])
        self._cut_start = np.cumsum([0] + [len(c) for c in cuts_sorted]).astype(np.int64)
        self._split_feature = np.array(feature, dtype=np.int64)
        self._split_low = np.array(low, dtype=np.uint16)
        self._split_span = np.array(span, dtype=np.uint16)
        self._split_keep = np.array(keep, dtype=dtype)
        self._tree_start = np.array(tree_start, dtype=np.int64)
        self._leaf_values = leaf_values

    @classmethod
    def current(cls, fast) -> bool:
        """Whether ``fast`` (e.g. unpickled) was compiled by this format and scikit-learn version.

        Parameters
        ----------
        fast : object
            A candidate predictor, typically unpickled with a model; anything else
            (``None`` included) is not current.

        Returns
        -------
        bool
            True when ``fast`` is a :class:`FastPredictor` of this :attr:`FORMAT` compiled
            under the installed scikit-learn version.
        """
        return (isinstance(fast, cls) and getattr(fast, "_format", None) == cls.FORMAT
                and getattr(fast, "sklearn_version", None) == _sklearn_version())

    @classmethod
    def compile(cls, pipeline, columns: list[str]) -> FastPredictor:
        """A fast predictor for ``pipeline``, checked bit for bit on a probe table.

        Parameters
        ----------
        pipeline : Pipeline
            A fitted ``Pipeline([("prep", ColumnTransformer), ("clf", HistGradientBoostingClassifier)])``.
        columns : list of str
            The business columns the pipeline reads, in order.

        Returns
        -------
        FastPredictor

        Raises
        ------
        KernelUnavailable
            The pipeline is not of the supported shape (binary, no native categorical
            splits, at most 64 leaves per tree, logit link), scikit-learn's private
            attributes changed, the kernel cannot be compiled here, or its probabilities
            differ from the pipeline's in any bit.
        """
        try:
            clf = pipeline.named_steps["clf"]
            if clf.n_trees_per_iteration_ != 1:
                raise KernelUnavailable("more than one tree per iteration (not a binary model)")
            if np.any(clf._bin_mapper.is_categorical_):
                raise KernelUnavailable("native categorical splits")
            fast = cls(pipeline)
            probe = fast._probe(columns)
            expected = pipeline.predict_proba(probe)
            got = fast.predict_proba(probe, n_threads=1)
        except KernelUnavailable:
            raise
        except Exception as err:  # private scikit-learn attributes changed, numba failed, ...
            raise KernelUnavailable(f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                                    f" (scikit-learn {_sklearn_version()})") from err
        if got.shape != expected.shape or not np.array_equal(got, expected):
            raise KernelUnavailable(f"compiled probabilities differ from scikit-learn "
                                    f"{_sklearn_version()}'s on the probe table")
        return fast

    @classmethod
    def build(cls, pipeline, columns: list[str], name: str = "fit") -> FastPredictor | None:
        """:meth:`compile`, or ``None`` after a warning (:func:`warn_fallback`) naming why.

        With ``None`` the caller scores with the pipeline itself (same probabilities,
        slower). Never raises :class:`KernelUnavailable`.

        Parameters
        ----------
        pipeline : Pipeline
            A fitted pipeline, as for :meth:`compile`.
        columns : list of str
            The business columns the pipeline reads, in order.
        name : str, default "fit"
            Label of the model in the fallback warning.

        Returns
        -------
        FastPredictor or None
            The checked predictor, or ``None`` when it cannot stand in for the pipeline.
        """
        try:
            return cls.compile(pipeline, columns)
        except KernelUnavailable as err:
            warn_fallback(name, str(err))
            return None

    def _probe(self, columns: list[str]) -> pd.DataFrame:
        """Rows that visit every cut point, every known category, unseen values and missing."""
        cuts = [self._cuts[a:b] for a, b in zip(self._cut_start[:-1], self._cut_start[1:], strict=True)]
        n = 64
        for _, known, _ in self._categorical:
            n = max(n, len(known) + 2)
        for c in cuts:
            n = max(n, 3 * len(c) + 2)
        rng = np.random.default_rng(0)
        data = {}
        for col, t in zip(self._numeric, cuts, strict=True):
            vals = np.concatenate([t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf),
                                   [np.nan, np.inf, -np.inf]])
            data[col] = rng.permutation(np.resize(vals, n))
        for col, known, _ in self._categorical:
            vals = [v for v in known.tolist() if v != self._missing] + ["\x00unseen\x00", None]
            data[col] = pd.Series(rng.permutation(np.resize(np.array(vals, dtype=object), n)),
                                  dtype="string")
        return pd.DataFrame(data)[[c for c in columns if c in data]]

    def inputs(self, X: pd.DataFrame, codes: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The numbers (float64, NaN = missing) and one-hot slots + 1 (int32) the kernel reads.

        Parameters
        ----------
        X : pandas.DataFrame
            Coerced accounts holding the model's columns.
        codes : dict, optional
            Caches ``pd.factorize`` of each categorical column, so that several
            models scoring the same table hash each column once.

        Returns
        -------
        tuple of numpy.ndarray
            ``(numbers, slots)`` of shapes ``(len(X), n_numeric)`` and
            ``(len(X), n_categorical)``.
        """
        n = len(X)
        num = np.empty((n, len(self._numeric)), dtype=float, order="F")
        for f, c in enumerate(self._numeric):
            num[:, f] = X[c].astype(float).to_numpy()
        cat = np.empty((n, len(self._categorical)), dtype=np.int32, order="F")
        for g, (c, known, slot) in enumerate(self._categorical):
            if codes is not None and c in codes:
                rows, text = codes[c]
            else:
                # hash each row once, then read each distinct value's text exactly as the
                # pipeline's encoder does (astype("string"), missing named)
                rows, uniques = pd.factorize(X[c], use_na_sentinel=True)
                text = pd.Series(uniques).astype("string").fillna(self._missing).to_numpy(dtype=object)
                text = np.append(text, self._missing)  # code -1 (missing) reads the last entry
                if codes is not None:
                    codes[c] = rows, text
            cat[:, g] = slot[known.get_indexer(text)][rows]  # -1 (unseen) -> the unseen slot
        return num, cat

    def predict_proba(self, X: pd.DataFrame, n_threads: int | None = None,
                      codes: dict | None = None) -> np.ndarray:
        """Class probabilities, shape (n, 2), identical to ``pipeline.predict_proba(X)``.

        Column 1 is :meth:`predict_positive`, column 0 is ``1 - `` it, as scikit-learn
        computes them.

        Parameters
        ----------
        X : pandas.DataFrame
            Coerced accounts holding the model's columns (n rows); not modified.
        n_threads : int, optional
            Threads to score with; by default :func:`scoring_threads` of ``len(X)``.
        codes : dict, optional
            Cache of factorized categorical columns shared across models (see :meth:`inputs`).

        Returns
        -------
        numpy.ndarray
            Float64 array of shape ``(len(X), 2)``: P(negative), P(positive) per row.
        """
        p = self.predict_positive(X, n_threads=n_threads, codes=codes)
        proba = np.empty((len(p), 2))
        proba[:, 1] = p
        proba[:, 0] = 1 - p
        return proba

    def predict_positive(self, X: pd.DataFrame, n_threads: int | None = None,
                         codes: dict | None = None) -> np.ndarray:
        """Probability of the positive class, shape (n,), identical to ``pipeline.predict_proba(X)[:, 1]``.

        With ``n_threads`` > 1 the rows are cut into that many blocks, each scored by its own
        Python thread (the kernel releases the GIL): unlike an OpenMP team, threads that
        finish early do not spin, so a busy machine slows scoring down gracefully instead of
        several-fold. Each row's sum is the same either way. The threads are started and
        joined within the call; nothing is kept.

        Parameters
        ----------
        X : pandas.DataFrame
            Coerced accounts holding the model's columns (n rows); not modified.
        n_threads : int, optional
            Threads to score with (values below 1 count as 1); by default
            :func:`scoring_threads` of ``len(X)``. Fewer than ``2 * n_threads`` rows are
            scored on the calling thread.
        codes : dict, optional
            Cache of factorized categorical columns shared across models (see :meth:`inputs`);
            filled in place.

        Returns
        -------
        numpy.ndarray
            Float64 array of shape ``(len(X),)``: the positive-class probability (0-1) of
            each row, ``expit`` of the raw score.
        """
        from scipy.special import expit

        from icpml._trees import raw_scores

        threads = scoring_threads(len(X)) if n_threads is None else max(1, n_threads)
        num, cat = self.inputs(X, codes)
        raw = np.empty(len(X))
        tables = (self._cuts, self._cut_start, self._split_feature, self._split_low, self._split_span,
                  self._split_keep, self._tree_start, self._leaf_values, self._baseline)

        def block(edge: tuple[int, int]) -> None:
            raw_scores(num, cat, edge[0], edge[1], *tables, raw)

        if threads == 1 or len(X) < 2 * threads:
            block((0, len(X)))
        else:
            from concurrent.futures import ThreadPoolExecutor

            edges = np.linspace(0, len(X), threads + 1).astype(int)
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(block, zip(edges[:-1], edges[1:], strict=True)))
        if self.link != "logit":  # pragma: no cover - only "logit" is ever compiled
            raise KernelUnavailable(f"unknown link {self.link!r}")
        return expit(raw)


def _leaves_in_order(nodes: np.ndarray) -> list[int]:
    """The tree's leaves from left to right."""
    order, stack = [], [0]
    while stack:
        n = stack.pop()
        if nodes["is_leaf"][n]:
            order.append(n)
        else:
            stack += [int(nodes["right"][n]), int(nodes["left"][n])]
    return order


def _leaf_bits(nodes: np.ndarray, order: list[int]) -> dict[int, int]:
    """For every node, the bit mask (over ``order``) of the leaves below it."""
    bits = {n: 1 << k for k, n in enumerate(order)}

    def below(n: int) -> int:
        if n not in bits:
            bits[n] = below(int(nodes["left"][n])) | below(int(nodes["right"][n]))
        return bits[n]

    below(0)
    return bits
