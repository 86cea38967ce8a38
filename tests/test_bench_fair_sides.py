"""The benchmark scripts time both sides of a comparison alike and check that they computed the
same thing: the helpers that do so, on small inputs (no timing is judged)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from benchmarks import bench_engine, bench_policies, bench_store, _store_peers


def test_mmd_peer_without_full_matrix_passes_is_the_same_test() -> None:
    import naive  # tests/engine, on the path through bench_engine

    rng = np.random.default_rng(3)
    for n, m in ((40, 40), (41, 37), (3, 2)):  # even and odd numbers of pairs
        x, y = rng.normal(size=(n, 5)), rng.normal(0.2, 1.0, size=(m, 5))
        assert bench_engine.numpy_mmd_matmul_inplace(x, y, 30, 7) == pytest.approx(
            naive.mmd_permutation_matmul(x, y, 30, 7), rel=1e-12, abs=0.0)


def test_interleaved_runs_every_side_equally_often_and_rotates() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name) or name) for name in ("a", "b", "c")}
    best, got = bench_engine._interleaved(fns, 4)
    assert sorted(best) == ["a", "b", "c"] and got == {"a": "a", "b": "b", "c": "c"}
    assert [calls.count(n) for n in "abc"] == [4, 4, 4]
    assert [calls[3 * r] for r in range(4)] == ["a", "b", "c", "a"]


def test_top_k_check_accepts_the_peers_and_refuses_other_rows() -> None:
    torch = pytest.importorskip("torch")
    import engine

    x = np.random.default_rng(0).random(50_000, dtype=np.float32)
    ours = engine.top_k(x, 100, sorted=False)
    part, tk = bench_engine.numpy_top_k(x, 100), bench_engine.torch_top_k(torch.from_numpy(x), 100)
    bench_engine._check_top_k(x, 100, ours, part, tk)
    with pytest.raises(AssertionError):
        bench_engine._check_top_k(x, 100, np.arange(100), part, tk)


def test_store_pair_takes_turns_at_going_first() -> None:
    calls: list[str] = []
    bench_store._pair(lambda: calls.append("store"), lambda: calls.append("peer"), 4)
    assert calls == ["store", "peer", "peer", "store", "store", "peer", "peer", "store"]


def test_read_sides_check_same_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import lance

    batches = bench_store.make_batches(2000, layout="shuffled")
    bench_store.build_store(str(tmp_path / "q"), batches, where="key % 100 = 0")
    peer = str(tmp_path / "peer.lance")
    lance.write_dataset(pa.concat_tables(batches), peer, max_rows_per_file=200)
    from modyn_store import Store

    snap = Store.open(str(tmp_path / "q")).as_of()
    lance.dataset(peer).delete("key % 100 = 0")
    _store_peers.check_same_rows(snap, peer, None)
    lance.dataset(peer).delete("key % 100 = 1")  # now the peer misses rows the store has
    with pytest.raises(AssertionError):
        _store_peers.check_same_rows(snap, peer, None)


def test_policy_warm_up_store_exercises_every_strategy() -> None:
    """The warm-up store has the measured store's versions, so no strategy's warm-up call selects
    from nothing (which would leave its kernels to compile inside the timed call)."""
    from policies import from_config

    warm = bench_policies.make_store("memory://bench-fair-warm", 1000)
    for name, cfg in bench_policies.strategies(1000, 50).items():
        assert from_config("selection", cfg).select(bench_policies.context(warm, 1000)).size > 0, name
