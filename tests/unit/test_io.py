"""Atomic output: a failed write leaves the old file intact and no temp files behind."""

from __future__ import annotations

import pandas as pd
import pytest

from icpml._io import atomic_write_text, write_table
from icpml.errors import ConfigError


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["a.txt"]


def test_failed_table_write_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "t.csv"
    p.write_text("old\n")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(RuntimeError):
        write_table(pd.DataFrame({"a": [1]}), p)
    assert p.read_text() == "old\n"
    assert [x.name for x in tmp_path.iterdir()] == ["t.csv"]


def test_table_formats(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_table(df, tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back["a"].tolist() == [1, 2] and back["b"].tolist() == ["x", "y"]
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        write_table(df, tmp_path / "t.xlsx")
