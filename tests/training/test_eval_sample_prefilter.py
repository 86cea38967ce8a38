"""The stratified evaluation sample drops rows hashed above a full pool's cut in every batch
(the same sample, read with less sorting)."""

from __future__ import annotations

import numpy as np


def test_full_pools_keep_filtering_later_batches(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # rows hashed above a full (slice, label) pool's cut are dropped before sorting, in every
    # batch: the filter's lowest label must not change from batch to batch
    import pyarrow as pa

    import training.eval_sample as es
    from modyn_store import Store
    from training.evaluation import Slice

    store = Store.open("memory://eval-perfect-sample-filter", create=True)
    n = 4000
    lab = (np.arange(n) % 2 + 3).astype(np.int64)
    store.append(pa.table({"key": np.arange(n), "ts": np.arange(n), "label": lab}))
    snap = store.as_of()
    sl = [Slice("a", 0, n, closed=True)]
    sample = es.EvalSample(size=10, stratify=True)
    ref = es.slice_keys(snap, sl, sample)[0].keys
    monkeypatch.setattr(es._BottomK, "SLACK", 0)
    seen: list[tuple[int, int, int]] = []
    orig = es._under_cut

    def spy(pools, sid, strata, h, lo, width):  # type: ignore[no-untyped-def]
        ok = orig(pools, sid, strata, h, lo, width)
        seen.append((lo, -1 if ok is None else int(ok.sum()), h.size))
        return ok

    monkeypatch.setattr(es, "_under_cut", spy)
    got = es.slice_keys(snap, sl, sample, batch_size=100)[0].keys
    assert np.array_equal(got, ref)
    assert {lo for lo, _, _ in seen} == {3}
    assert sum(kept for _, kept, _ in seen if kept >= 0) < n // 4  # later batches are mostly filtered out
