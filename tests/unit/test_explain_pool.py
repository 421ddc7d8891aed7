"""--explain in worker processes gives the same reasons as in-process SHAP."""

from __future__ import annotations

import dataclasses

import pandas as pd

from icpml.synthetic import make_accounts


def test_worker_processes_give_the_same_reasons(discovery, monkeypatch):
    import concurrent.futures

    import icpml.scoring as scoring

    started = []

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *a, **k):
            started.append(self)
            super().__init__(*a, **k)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Counting)
    monkeypatch.setattr(scoring, "_PARALLEL_SHAP_ROWS", 50)
    monkeypatch.setenv("ICPML_THREADS", "2")
    prospects = make_accounts(240, seed=31)
    scorer = dataclasses.replace(discovery.scorer, chunk_size=120)
    pooled = scorer.score(prospects, explain=True)  # second chunk goes to the workers
    assert len(started) == 1  # one pool for the stream, from its second chunk
    assert started[0]._shutdown_thread  # its session closed it when the stream ended
    monkeypatch.setenv("ICPML_THREADS", "1")
    alone = scorer.score(prospects, explain=True)
    pd.testing.assert_frame_equal(pooled, alone)
    assert pooled["top_reasons"].str.contains("fit").all()
