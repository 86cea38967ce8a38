"""``VectorIndex`` options: each one changes the index or its answers (an ignored option fails
here), and out-of-range values are typed errors naming the option, raised before anything is
written to ``uri``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.vectors import Kind, VectorIndex

N, D, K = 4000, 16, 10


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(N, D)).astype(np.float32)  # no clusters: partition borders everywhere
    queries = base[:60].astype(np.float64) + rng.normal(size=(60, D)) * 0.1
    return base, queries


def _brute(base: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d2 = ((q[:, None, :] - base.astype(np.float64)[None]) ** 2).sum(-1)
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d2, idx, 1)


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / want.shape[1] for a, b in zip(got.tolist(), want.tolist())]))


def _stats(index: VectorIndex) -> dict[str, Any]:
    st = index._table.to_lance().stats.index_stats("vector_idx")
    return (st.get("segments") or st["indices"])[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["ivf_pq", "hnsw"])
def test_nprobes_and_refine_factor_change_the_answers(kind: Kind) -> None:
    base, q = _data()
    want, want_d = _brute(base, q, K)
    # 15 partitions (IVF-HNSW-SQ: num_partitions // 16), the most 4,000 vectors train
    parts = 15 if kind == "ivf_pq" else 15 * 16
    index = VectorIndex.from_arrays(np.arange(N), base, kind=kind, num_partitions=parts, nprobes=1000,
                                    refine_factor=50)
    try:
        keys, dist = index.search(q, K)  # every partition, exact re-ranking: the exact answer
        assert _recall(keys, want) == 1.0
        np.testing.assert_allclose(dist, want_d, rtol=1e-5, atol=1e-4)
        index.refine_factor = 0  # no re-ranking: the index's approximate distances
        _, approx = index.search(q, K)
        assert np.abs(approx - want_d).max() > 1e-2
        index.nprobes, index.refine_factor = 1, 50  # one partition: neighbours in others are missed
        keys, _ = index.search(q, K)
        assert _recall(keys, want) < 0.9
    finally:
        index.close()


def test_kind_num_partitions_and_num_sub_vectors_shape_the_index() -> None:
    base, _ = _data()
    pq = VectorIndex.from_arrays(np.arange(N), base, kind="ivf_pq", num_partitions=4, num_sub_vectors=8)
    default = VectorIndex.from_arrays(np.arange(N), base, kind="ivf_pq")
    hnsw = VectorIndex.from_arrays(np.arange(N), base, kind="hnsw")
    try:
        got = _stats(pq)
        assert got["num_partitions"] == 4 and got["sub_index"]["num_sub_vectors"] == 8
        dflt = _stats(default)
        assert dflt["num_partitions"] != 4 and dflt["sub_index"]["num_sub_vectors"] == D // 4
        assert "HNSW" in _stats(hnsw)["index_type"].upper() and "PQ" in dflt["index_type"].upper()
    finally:
        for index in (pq, default, hnsw):
            index.close()


@pytest.mark.parametrize("option, value", [
    ("nprobes", 0), ("nprobes", -3), ("nprobes", 1.5), ("refine_factor", -1), ("refine_factor", True),
    ("num_partitions", 0), ("num_sub_vectors", 0), ("num_sub_vectors", 5), ("exact_below", -1),
    ("exact_below", 10.0),
])
def test_out_of_range_options_are_typed_errors_before_any_write(tmp_path: Path, option: str, value: Any) -> None:
    base, _ = _data()
    with pytest.raises(InvalidArgumentError) as err:
        VectorIndex.from_arrays(np.arange(N), base, kind="ivf_pq", uri=str(tmp_path / "db"), **{option: value})
    assert err.value.args and option in str(err.value)
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize("option, value", [("nprobes", 0), ("refine_factor", -1)])
def test_search_refuses_options_set_out_of_range_after_the_build(option: str, value: int) -> None:
    base, q = _data()
    index = VectorIndex.from_arrays(np.arange(1000), base[:1000], kind="ivf_pq")
    try:
        setattr(index, option, value)
        with pytest.raises(InvalidArgumentError, match=option):
            index.search(q[:2], K)
    finally:
        index.close()
