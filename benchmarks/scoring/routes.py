"""The compiled kernel against other compiled routes for the same trees: ONNX Runtime, treelite.

Usage (after ``python benchmarks/scoring/run.py --quick`` has built the cache)::

    pip install skl2onnx onnxruntime        # and/or: pip install treelite tl2cgen (+ gcc)
    python benchmarks/scoring/routes.py     # 250,000 prospects, ~1-2 min

For the fit and the churn model of the benchmark's registered scorer, on the 250,000-row
prospect file, best of 3 (one warm-up call first), 1 and 2 threads:

* **kernel**: ``FastPredictor.predict_positive`` as scoring calls it (its own encoding of
  the raw columns, then the trees), and the trees alone on inputs encoded beforehand;
* **ONNX**: the ``HistGradientBoostingClassifier`` converted by skl2onnx (the pipeline's
  ``FunctionTransformer`` steps cannot be converted, so the encoding is scikit-learn's
  ``ColumnTransformer.transform``), run by onnxruntime on the encoded rows, as float32
  (skl2onnx's default) and as double; timed with and without the encoding;
* **treelite**: the same classifier imported by ``treelite.sklearn.import_model``,
  predicted by treelite's GTIL (an interpreter) and compiled to C by tl2cgen (gcc), on the
  encoded rows (again encoded by scikit-learn for the end-to-end figure).

Each route's probabilities are compared with scikit-learn's ``predict_proba`` (largest
absolute difference, and whether they are identical bit for bit), since scoring's
contract is that compiled scores equal scikit-learn's. Prints a JSON line per model and
writes ``results/routes.json``. A route whose package is missing is reported as such.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
ROWS = 250_000


#: CPU seconds (all threads) of the fastest wall-clock call of each _best_of_3, by label order.
CPU: list[float] = []


def _best_of_3(fn) -> float:
    """Fastest of 3 calls (after a warm-up), wall seconds; its CPU seconds go to :data:`CPU`
    (on a shared machine the CPU time is the steadier figure for one-thread cases)."""
    fn()
    best = (float("inf"), 0.0)
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    CPU.append(best[1])
    return best[0]


def _agreement(p: np.ndarray, expected: np.ndarray) -> dict:
    p = np.asarray(p, dtype=float).reshape(len(expected))
    return {"max_abs_diff": float(np.max(np.abs(p - expected))),
            "identical": bool(np.array_equal(p, expected))}


def _kernel(model, X: pd.DataFrame, expected: np.ndarray) -> dict:
    from icpml._trees import raw_scores

    fast = model.compile().kernel
    num, cat = fast.inputs(X)
    raw = np.empty(len(X))
    tables = (fast._cuts, fast._cut_start, fast._split_feature, fast._split_low, fast._split_span,
              fast._split_keep, fast._tree_start, fast._leaf_values, fast._baseline)
    out = {"agreement": _agreement(fast.predict_positive(X, n_threads=1), expected)}
    for t in (1, 2):
        out[f"end_to_end_s_{t}t"] = _best_of_3(lambda t=t: fast.predict_positive(X, n_threads=t))
    out["trees_only_s_1t"] = _best_of_3(lambda: raw_scores(num, cat, 0, len(X), *tables, raw))
    return out


def _onnx(model, X: pd.DataFrame, expected: np.ndarray) -> dict:
    try:
        import onnxruntime
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    except ImportError as err:
        return {"unavailable": f"{err}"}

    _bools_as_ints()
    pre, clf = model.pipeline.named_steps["prep"], model.pipeline.named_steps["clf"]
    encoded = pre.transform(X[model.columns])
    out: dict = {"versions": {"onnxruntime": onnxruntime.__version__}}
    out["encoding_s"] = _best_of_3(lambda: pre.transform(X[model.columns]))
    for label, typ, dtype, opsets in (("float32", FloatTensorType, np.float32, None),
                                      ("double", DoubleTensorType, np.float64, {"": 17, "ai.onnx.ml": 3})):
        try:
            onx = convert_sklearn(clf, initial_types=[("X", typ([None, encoded.shape[1]]))],
                                  target_opset=opsets, options={id(clf): {"zipmap": False}})
        except Exception as err:  # noqa: BLE001 - report why the route is unavailable
            out[label] = {"unavailable": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
            continue
        try:
            out[label] = _onnx_times(onx, encoded.astype(dtype), expected)
        except Exception as err:  # noqa: BLE001 - e.g. onnxruntime has no double kernel
            out[label] = {"unavailable": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
            continue
        r = out[label]
        r["end_to_end_s_1t"] = out["encoding_s"] + r["trees_only_s_1t"]
    return out


def _onnx_times(onx, data: np.ndarray, expected: np.ndarray) -> dict:
    import onnxruntime as ort

    r: dict = {}
    for t in (1, 2):
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        prob_name = next(o.name for o in sess.get_outputs() if "prob" in o.name.lower())

        def run(sess=sess, name=name, prob_name=prob_name):
            return sess.run([prob_name], {name: data})[0]

        if t == 1:
            r["agreement"] = _agreement(run()[:, 1], expected)
        r[f"trees_only_s_{t}t"] = _best_of_3(run)
    return r


def _bools_as_ints() -> None:
    """skl2onnx 1.20 hands numpy booleans to ``onnx.helper.make_attribute``, which protobuf 7
    refuses ("Expected an int, got a boolean"): pass them as the 0/1 the attribute means."""
    import onnx.helper as oh

    if getattr(oh.make_attribute, "_icpml_patched", False):
        return
    original = oh.make_attribute

    def make_attribute(key, value, *args, **kwargs):
        if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
            value = [int(v) for v in value]
        elif isinstance(value, np.ndarray) and value.dtype == bool:
            value = value.astype(np.int64)
        return original(key, value, *args, **kwargs)

    make_attribute._icpml_patched = True
    oh.make_attribute = make_attribute


def _treelite(model, X: pd.DataFrame, expected: np.ndarray) -> dict:
    try:
        import treelite
        import treelite.sklearn
    except ImportError as err:
        return {"unavailable": f"{err}"}
    pre, clf = model.pipeline.named_steps["prep"], model.pipeline.named_steps["clf"]
    encoded = pre.transform(X[model.columns])
    try:
        tl = treelite.sklearn.import_model(clf)
    except Exception as err:  # noqa: BLE001
        return {"unavailable": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    r: dict = {"versions": {"treelite": treelite.__version__}}
    p = np.asarray(treelite.gtil.predict(tl, encoded)).reshape(len(X), -1)[:, -1]
    r["gtil"] = {"agreement": _agreement(p, expected)}
    for t in (1, 2):
        r["gtil"][f"trees_only_s_{t}t"] = _best_of_3(
            lambda t=t: treelite.gtil.predict(tl, encoded, nthread=t))
    try:  # the compiled route: C code generated by tl2cgen, built with gcc
        import tempfile

        import tl2cgen
    except ImportError as err:
        r["tl2cgen"] = {"unavailable": f"{err}"}
        return r
    lib = Path(tempfile.mkdtemp()) / f"{model.name}.so"
    t0 = time.perf_counter()
    tl2cgen.export_lib(tl, toolchain="gcc", libpath=str(lib), params={"parallel_comp": 8})
    c: dict = {"compile_s": time.perf_counter() - t0}
    dm = tl2cgen.DMatrix(encoded, dtype="float64")
    for t in (1, 2):
        pred = tl2cgen.Predictor(str(lib), nthread=t)
        if t == 1:
            c["agreement"] = _agreement(np.asarray(pred.predict(dm)).reshape(len(X), -1)[:, -1], expected)
        c[f"trees_only_s_{t}t"] = _best_of_3(lambda pred=pred: pred.predict(dm))
    c["end_to_end_s_1t"] = _best_of_3(lambda: pre.transform(X[model.columns])) + c["trees_only_s_1t"]
    r["tl2cgen"] = c
    return r


def main() -> None:
    extra = os.environ.get("ROUTES_EXTRA_PATH")
    if extra:  # e.g. --target directories with skl2onnx/onnxruntime, after the project's own
        sys.path.extend(extra.split(os.pathsep))
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{CACHE}/mlruns/mlflow.db")
    os.environ.setdefault("ICPML_PROJECT_ROOT", str(CACHE))
    from threadpoolctl import threadpool_limits

    from icpml.tracking import load_scorer

    scorer = load_scorer("models:/bench-fit@champion")
    X, _ = scorer.prepare(pd.read_parquet(CACHE / f"prospects_{ROWS}.parquet"))
    result = {"rows": len(X)}
    for model in (scorer.fit_model, scorer.churn_model):
        with threadpool_limits(1, user_api="openmp"):
            expected = model.pipeline.predict_proba(X[model.columns])[:, 1]
            sk = _best_of_3(lambda m=model: m.pipeline.predict_proba(X[m.columns]))
        clf = model.pipeline.named_steps["clf"]
        r = {"trees": len(clf._predictors), "features_encoded": int(clf.n_features_in_),
             "sklearn_end_to_end_s_1t": sk,
             "kernel": _kernel(model, X, expected),
             "onnx": _onnx(model, X, expected),
             "treelite": _treelite(model, X, expected)}
        r["cpu_s_in_call_order"] = list(CPU)
        CPU.clear()
        result[model.name] = r
        print(json.dumps({model.name: r}))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "routes.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
