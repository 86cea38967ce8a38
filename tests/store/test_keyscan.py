"""The one-pass live-key scan and the chunked key checksum give exactly the reference answers."""

from __future__ import annotations

import numpy as np
import pytest

from modyn_store.core import integrity
from modyn_store.core._keyscan import LiveKeys


def _mix_reference(keys: np.ndarray) -> int:
    """The checksum as the version log has always recorded it, written the plain way."""
    z = keys.astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z ^= z >> np.uint64(29)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(32)
    return int(z.sum(dtype=np.uint64))


@pytest.mark.parametrize("n", [0, 1, 7, integrity.CHUNK - 1, integrity.CHUNK, integrity.CHUNK + 1, 3 * integrity.CHUNK + 5])
def test_checksum_matches_the_recorded_format(n: int) -> None:
    keys = np.random.default_rng(n).integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    assert integrity.key_checksum(keys) == _mix_reference(keys)
    assert integrity.key_checksum(keys[::3]) == _mix_reference(keys[::3])  # strided input
    c = integrity.Checksum()
    for part in np.array_split(keys, 5):
        c.add(part)
    assert c.value == _mix_reference(keys)


def test_checksum_of_a_written_store_is_unchanged() -> None:
    # values the version logs of existing stores carry: a changed mix would fail every old store
    assert integrity.key_checksum(np.arange(10, dtype=np.int64)) == 0xDB11542297E29C0A
    assert integrity.key_checksum(np.array([-1, 0, 2**62])) == 0x204A603F63AC5D5D


def _reference(batches: list[np.ndarray], dead: np.ndarray, extra: np.ndarray) -> np.ndarray:
    keys = np.concatenate([*batches, np.empty(0, np.int64)])
    return np.sort(np.concatenate([keys[~np.isin(keys, dead)], extra]))


@pytest.mark.parametrize("order", ["sorted", "shuffled", "sorted batches out of order"])
@pytest.mark.parametrize("upper_slack", [0, -50, 10])
def test_live_keys_equal_the_reference(order: str, upper_slack: int) -> None:
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 10**6, 5000))
    if order == "shuffled":
        rng.shuffle(keys)
    cuts = np.sort(rng.choice(keys.size, 6, replace=False))
    batches = np.split(keys, cuts)
    if order == "sorted batches out of order":
        batches = batches[::-1]
    dead = np.unique(np.concatenate([rng.choice(keys, 300), rng.integers(0, 10**6, 50)]))
    extra = np.unique(rng.integers(2 * 10**6, 3 * 10**6, 20))
    live = LiveKeys(dead, keys.size + extra.size + upper_slack)
    for b in batches:
        live.add(b)
    got, checksum = live.finish(extra)
    want = _reference(batches, dead, extra)
    assert np.array_equal(got, want)
    assert checksum == integrity.key_checksum(want)


def test_live_keys_drop_every_copy_of_a_dead_key_and_keep_duplicates_visible() -> None:
    # damaged files may hold a key twice: a dead one leaves entirely, a live one stays twice
    # (so the count against the version log catches it)
    live = LiveKeys(np.array([3]), 6)
    live.add(np.array([1, 3, 3, 5, 5, 6]))
    got, checksum = live.finish()
    assert got.tolist() == [1, 5, 5, 6]
    assert checksum == integrity.key_checksum(np.array([1, 5, 5, 6]))


def test_live_keys_with_nothing_scanned() -> None:
    got, checksum = LiveKeys(np.array([1, 2]), 0).finish()
    assert got.size == 0 and checksum == 0


@pytest.mark.parametrize("order", ["ascending", "random", "spread-numpy", "spread-kernels"])
def test_every_read_of_every_version_equals_the_reference(
        tmp_path: object, order: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    import engine._search
    from modyn_store import InvalidArgumentError, Store

    rng = np.random.default_rng(11)
    # 20,000 keys in 4 appends: unsorted batches of 5,000 keys take the hashed lookup of dead keys
    # (a direct table for keys below 10^6; spread over int64, NumPy's filter or the kernels')
    n = 20_000
    if order == "ascending":
        keys = np.arange(n, dtype=np.int64)
    elif order == "random":
        keys = rng.permutation(10**6)[:n].astype(np.int64)
    else:
        keys = rng.permutation(np.unique(rng.integers(-(2**63), 2**63 - 1, n + 50, dtype=np.int64))[:n])
        monkeypatch.setattr(engine._search, "numba_loaded", lambda: order == "spread-kernels")
    store = Store.open(f"{tmp_path}/s", create=True)
    live: dict[int, set[int]] = {0: set()}
    current: set[int] = set()
    for i, part in enumerate(np.array_split(keys, 4)):
        store.append(pa.table({"key": part, "ts": np.arange(part.size), "x": part.astype(np.float64)}))
        current |= set(part.tolist())
        live[store.version] = set(current)
        gone = rng.choice(np.array(sorted(current)), 40, replace=False)
        store.delete(keys=gone)
        current -= set(gone.tolist())
        live[store.version] = set(current)
    erased = np.array(sorted(current))[:5]
    store.erase(erased, reason="test")
    for v in live:
        live[v] -= set(erased.tolist())
    for v, want in live.items():
        snap = Store.open(store.uri).as_of(v)
        expect = np.array(sorted(want), dtype=np.int64)
        assert np.array_equal(snap.keys(), expect), v
        for size in (7, 1 << 20):
            parts = list(snap.iter_keys(batch_size=size))
            assert all(0 < p.size <= size for p in parts)
            got = np.concatenate(parts) if parts else np.empty(0, np.int64)
            assert np.array_equal(np.sort(got), expect), (v, size)
            batches = list(snap.to_batches(["x"], batch_size=size))
            xs = np.concatenate([b.column(0).to_numpy() for b in batches]) if batches else np.empty(0)
            assert np.array_equal(np.sort(xs), expect.astype(np.float64)), (v, size)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        store.as_of().iter_keys(batch_size=0)


def test_seen_keys_membership_matches_a_set() -> None:
    from modyn_store.core._keyscan import SeenKeys

    rng = np.random.default_rng(2)
    for trial in range(30):
        seen, truth = SeenKeys(cap=10**6), set()
        for _ in range(rng.integers(1, 8)):
            kind = rng.integers(0, 4)
            if kind == 3:  # sorted, spanning exactly its size, but with a repeat and so a gap
                lo = int(rng.integers(0, 300))
                part = np.array([lo, lo, lo + 2] if rng.integers(0, 2) else [lo, lo + 2, lo + 2])
            elif kind == 0:  # a run of consecutive keys, maybe touching or overlapping earlier ones
                lo = int(rng.integers(0, 300))
                part = np.arange(lo, lo + int(rng.integers(1, 120)))
            elif kind == 1:  # sorted with gaps
                part = np.unique(rng.integers(0, 400, int(rng.integers(1, 50))))
            else:  # unsorted
                part = rng.integers(0, 400, int(rng.integers(1, 50)))
            seen.add(part)
            truth.update(part.tolist())
        probe = np.arange(-5, 420)
        got = probe[seen.frozen().positions(probe)].tolist()
        assert got == sorted(k for k in probe.tolist() if k in truth), trial


def test_seen_keys_never_take_a_span_with_a_repeat_for_a_run() -> None:
    from modyn_store.core._keyscan import SeenKeys

    seen = SeenKeys()
    seen.add(np.array([5, 5, 7]))  # three keys from 5 to 7, but 6 was never read
    seen.add(np.arange(8, 12))
    assert np.arange(4, 13)[seen.frozen().positions(np.arange(4, 13))].tolist() == [5, 7, 8, 9, 10, 11]


def test_seen_keys_stay_small_for_runs_and_overflow_past_the_cap() -> None:
    from modyn_store.core._keyscan import SeenKeys

    seen = SeenKeys(cap=100)
    for start in range(0, 10**6, 65536):  # a scan of auto-assigned keys, batch by batch
        seen.add(np.arange(start, min(10**6, start + 65536)))
    assert seen.intervals == 1 and not seen.overflowed
    seen.add(np.arange(200, 0, -1))  # out of order, beyond the cap
    assert seen.overflowed


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_a_stream_resumes_with_bounded_memory_or_says_it_cannot(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """A stream whose files vanish resumes from its recorded keys: intervals for keys read in
    order (no cap reached), while keys read out of order beyond the cap raise ConflictError."""
    import pyarrow as pa

    from modyn_store import ConflictError, Store
    from modyn_store.core import _keyscan, _stream

    rng = np.random.default_rng(5)
    keys = np.arange(3000) if order == "ascending" else rng.permutation(3000)
    store = Store.open(str(tmp_path / "s"), create=True)  # type: ignore[operator]
    for part in np.array_split(keys, 6):
        store.append(pa.table({"key": part, "ts": part}))
    store.delete(keys=keys[::50])
    snap = store.as_of()
    monkeypatch.setattr(_keyscan, "SEEN_CAP", 200)

    def broken(ds: object) -> object:
        for n, b in enumerate(b for r in snap._readers(ds, ["key"], batch_size=100) for b in r):
            if n == 12:
                raise OSError("file vanished")
            yield b

    ds = store._tables.open("samples")
    stream = _stream.live_stream(snap, [broken(ds)], ["key"], None, 100, keys_only=True)
    if order == "shuffled":
        with pytest.raises(ConflictError, match="read again"):
            list(stream)
    else:
        got = np.concatenate(list(stream))
        assert got.size == snap.count() and np.array_equal(np.sort(got), snap.keys())


@pytest.mark.parametrize(
    "first, n", [(0, 1), (0, 10), (-5, 11), (10**12, 70000), (2**63 - 1000, 1000), (-(2**63), 1000)]
)
def test_run_checksum_is_the_checksum_of_the_run(first: int, n: int) -> None:
    want = _mix_reference(np.arange(n, dtype=np.int64) + np.int64(first))
    integrity._RUNS.clear()
    assert integrity.run_checksum(first, n) == want
    assert integrity.run_checksum(first, n) == want  # the kept value
    c = integrity.Checksum()
    c.add_run(first, n)
    assert c.value == want


def test_checksums_in_threads_share_no_scratch() -> None:
    # every thread mixes in its own scratch buffers: checksums computed at once in several
    # threads, of many chunks each, equal the reference
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    arrays = [rng.integers(-(2**63), 2**63 - 1, 3 * integrity.CHUNK + 17, dtype=np.int64) for _ in range(8)]
    want = [_mix_reference(a) for a in arrays]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            assert list(pool.map(integrity.key_checksum, arrays)) == want
    integrity._RUNS.clear()
    firsts = [int(f) for f in rng.integers(0, 2**40, 8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda f: integrity.run_checksum(f, 2 * integrity.CHUNK + 5), firsts))
    assert got == [_mix_reference(np.arange(2 * integrity.CHUNK + 5, dtype=np.int64) + f) for f in firsts]


def test_runs_and_lookalikes_give_the_reference_keys_and_checksum(monkeypatch: pytest.MonkeyPatch) -> None:
    # batches that are runs of consecutive keys take their checksum from their ends; batches
    # with the same ends and length that are no run (a repeat, a swap) must not
    runs: list[tuple[int, int]] = []
    real = integrity.run_checksum

    def counted(first: int, n: int) -> int:
        runs.append((first, n))
        return real(first, n)

    from modyn_store.core import _runclaims

    monkeypatch.setattr(_runclaims, "run_checksum", counted)
    batches = [
        np.arange(0, 100),  # a run, dead keys at both ends
        np.arange(100, 200),  # the next run: its dropped dead keys adjoin the previous ones
        np.arange(300, 400),  # a run after a gap that holds a dead key (250)
        np.array([400, 401, 401, 403]),  # ends 400..403 and length 4, but a repeat
        np.array([500, 502, 501, 503]),  # ends 500..503 and length 4, but out of order
        np.array([600, 601, 603, 604, 605]),  # sorted, no run: a gap
        np.arange(700, 705)[::-1].copy(),  # descending
        np.arange(2**63 - 5, 2**63 - 1),  # a run ending at the largest key
        np.array([803, 801, 803, 802, 801]),  # unsorted with repeats: every copy of a dead key leaves
    ]
    dead = np.array([0, 50, 99, 100, 150, 199, 250, 300, 399, 401, 502, 603, 702, 801, 2**63 - 2], dtype=np.int64)
    extra = np.array([10**6], dtype=np.int64)
    live = LiveKeys(dead, sum(b.size for b in batches) + 1)
    for b in batches:
        live.add(b.astype(np.int64))
    got, checksum = live.finish(extra)
    want = _reference([b.astype(np.int64) for b in batches], dead, extra)
    assert np.array_equal(got, want)
    assert checksum == _mix_reference(want)
    assert runs == [(0, 100), (100, 100), (300, 100), (2**63 - 5, 4)]


def test_a_read_of_shifted_keys_is_caught_after_their_runs_were_checked(tmp_path: object) -> None:
    # the same number of keys, each one higher, still one run: only the run's other ends tell;
    # a read made before the damage (its run checksums kept by the process) must not mask it
    import lance
    import pyarrow as pa

    from modyn_store import CorruptionError, Store

    store = Store.open(f"{tmp_path}/s", create=True)
    store.append(pa.table({"ts": np.arange(5000)}))
    store.delete(keys=np.arange(100, 4000, 7))  # (all still inside the shifted range)
    want = Store.open(store.uri).as_of().keys()
    assert want.size == 5000 - 558
    uri = store._tables.uri("samples")
    t = lance.dataset(uri).to_table()
    shifted = t.set_column(t.schema.get_field_index("key"), "key", pa.compute.add(t.column("key"), 1))
    lance.write_dataset(shifted, uri, mode="overwrite")
    with pytest.raises(CorruptionError, match="other keys than"):
        Store.open(store.uri).as_of().keys()
