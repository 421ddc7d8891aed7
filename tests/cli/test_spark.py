"""`mlflow.pyfunc.spark_udf` applies the registered champion on local Spark, row for row
the same as the pandas model. Needs the optional extra: ``pip install -e ".[spark]"`` and Java."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from icpml.synthetic import make_accounts

RESULT_TYPE = ("account_id string, fit_score double, churn_risk double, tier string, "
               "icp_match boolean, anti_icp_match boolean, exclusion_reasons string, "
               "top_reasons string, data_issues string")


def _unavailable(why: str) -> None:
    """Skip, or fail where Spark is required (``ICPML_REQUIRE_SPARK=1``: CI installs it)."""
    if os.environ.get("ICPML_REQUIRE_SPARK") == "1":
        pytest.fail(f"ICPML_REQUIRE_SPARK=1 but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def spark():
    try:
        import pyspark  # noqa: F401
    except ModuleNotFoundError:
        _unavailable("pyspark not installed (pip install -e '.[spark]')")
    # any other import error is a failure, not a skip
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        _unavailable("Spark needs Java (no java on PATH, no JAVA_HOME)")
    from pyspark.sql import SparkSession

    mp = pytest.MonkeyPatch()
    mp.setenv("PYSPARK_PYTHON", sys.executable)  # workers must see this venv's packages
    mp.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("icpml-test")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "2").getOrCreate())
    yield session
    session.stop()
    mp.undo()


def test_spark_udf_scores_like_pandas(demo_run, spark, monkeypatch):
    import mlflow
    from pyspark.sql.functions import col, struct

    root, result = demo_run
    assert result.exit_code == 0, result.output
    store = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store)
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)

    prospects = make_accounts(400, seed=11).drop(columns=["arr", "nrr", "nps", "churned"])
    # Spark takes plain object/str columns, not pandas' string dtype
    sdf = spark.createDataFrame(prospects.astype(
        {c: object for c in prospects.columns if prospects[c].dtype.kind not in "biuf"}))
    udf = mlflow.pyfunc.spark_udf(spark, "models:/demo-fit@champion", result_type=RESULT_TYPE,
                                  env_manager="local")
    got = (sdf.withColumn("s", udf(struct(*[col(c) for c in sdf.columns])))
           .select("s.*").toPandas().set_index("account_id"))
    ref = mlflow.pyfunc.load_model("models:/demo-fit@champion").predict(prospects)
    ref = ref.set_index("account_id")
    assert len(got) == len(ref) == 400
    assert (got.loc[ref.index, "tier"].to_numpy() == ref["tier"].astype(str).to_numpy()).all()
    diff = (got.loc[ref.index, "fit_score"] - ref["fit_score"]).abs().max()
    assert diff < 1e-9
    assert got["tier"].nunique() >= 3
