"""Streaming input and output: tables read and written in chunks, atomically."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from icpml._io import prefetch, write_table_stream
from icpml.data import iter_accounts, iter_query
from icpml.errors import DataError
from icpml.synthetic import make_accounts


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_read_back_the_whole_table(tmp_path, suffix):
    df = make_accounts(250, seed=2)[["account_id", "industry", "employees", "crm"]]
    path = tmp_path / f"a{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    chunks = list(iter_accounts(path, 100))
    assert [len(c) for c in chunks] == [100, 100, 50]
    back = pd.concat(chunks, ignore_index=True)
    assert back["account_id"].tolist() == df["account_id"].tolist()
    assert back["employees"].tolist() == df["employees"].tolist()


def test_a_header_without_rows_is_one_empty_table(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("account_id,industry\n")
    (only,) = list(iter_accounts(path, 100))
    assert list(only.columns) == ["account_id", "industry"] and only.empty


def test_semicolon_files_are_named_in_the_first_chunk(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("account_id;industry\nA;SaaS\n")
    with pytest.raises(DataError, match="semicolon"):
        list(iter_accounts(path, 100))


def test_query_streams_in_batches(tmp_path):
    pytest.importorskip("duckdb")
    src = tmp_path / "m.parquet"
    make_accounts(120, seed=1)[["account_id", "employees"]].to_parquet(src)
    sizes = [len(c) for c in iter_query(f"SELECT * FROM '{src}' WHERE employees > 0", 50)]
    assert sum(sizes) == 120 and max(sizes) <= 50
    (empty,) = list(iter_query(f"SELECT * FROM '{src}' WHERE employees < 0", 50))
    assert list(empty.columns) == ["account_id", "employees"] and empty.empty
    with pytest.raises(DataError, match="the query failed"):
        list(iter_query("SELECT * FROM no_such_table", 50))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_stream_written_whole_or_not_at_all(tmp_path, suffix):
    df = make_accounts(90, seed=3)[["account_id", "employees", "industry"]]
    out = tmp_path / f"o{suffix}"
    assert write_table_stream((df.iloc[i:i + 40] for i in range(0, 90, 40)), out) == 90
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert back["account_id"].tolist() == df["account_id"].tolist()

    def broken():
        yield df.iloc[:40]
        raise DataError("row 41 is broken", "x")

    out2 = tmp_path / f"p{suffix}"
    with pytest.raises(DataError):
        write_table_stream(broken(), out2)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial file, no temp file


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_only_the_wanted_columns_are_read(tmp_path, suffix):
    df = make_accounts(30, seed=4)[["account_id", "industry", "employees", "crm"]]
    path = tmp_path / f"a{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    (chunk,) = list(iter_accounts(path, 100, ["account_id", "employees", "not_in_file"]))
    assert list(chunk.columns) == ["account_id", "employees"]
    assert chunk["employees"].tolist() == df["employees"].tolist()
    path.write_text("account_id;industry\nA;SaaS\n") if suffix == ".csv" else None
    if suffix == ".csv":  # the delimiter check still reads the whole header
        with pytest.raises(DataError, match="semicolon"):
            list(iter_accounts(path, 100, ["account_id"]))


def test_prefetch_keeps_items_order_and_errors():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise DataError("row 3 is bad", "x")

    got = []
    with pytest.raises(DataError, match="row 3 is bad"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]  # raised in the consumer, after the items before it


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    produced = []
    finished = threading.Event()

    def endless():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            finished.set()

    stream = prefetch(endless(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert finished.wait(5)
    assert len(produced) < 10  # it stopped a few items ahead, not at the end
