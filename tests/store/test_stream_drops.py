"""The rows a stream drops, kept between reads of a version (``modyn_store.core._deadpos``):
a later stream of the same version, table content and dead set takes them instead of NumPy's
filter, and answers exactly as the filter would after every change of any of the three, with
damaged or forged entries, mid-stream erasures and user filters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import engine._search
from modyn_store import Store
from modyn_store.core import _deadpos, _kept
from modyn_store.core._deadpos import KeptDrops
from modyn_store.core._table_values import TableValues
from tests.store.test_kept_reads import _new_process, cache  # noqa: F401 (a fixture)

N = 30_000
#: batches of this many keys in no order take the hashed lookup (>= PREFILTER_MIN)
BATCH = 1 << 13


@pytest.fixture
def filtered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """NumPy's filter, as in a process without Numba; counts the keys it looks up."""
    monkeypatch.setattr(engine._search, "numba_loaded", lambda: False)
    calls: list[int] = []
    real = engine._search.HashedKeys.hits

    def counted(self: engine._search.HashedKeys, a: np.ndarray) -> np.ndarray:
        calls.append(int(a.size))
        return real(self, a)

    monkeypatch.setattr(engine._search.HashedKeys, "hits", counted)
    return calls


def _spread(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.permutation(np.unique(rng.integers(-(2**63), 2**63 - 1, n + 100, dtype=np.int64))[:n])


def _store(uri: str, keys: np.ndarray) -> Store:
    s = Store.open(uri, create=True)
    s.append(pa.table({"key": keys, "ts": np.arange(keys.size), "x": keys.astype(np.float64)}))
    s.delete(keys=keys[::97])
    return s


def _keys(store: Store, version: int | None = None) -> np.ndarray:
    parts = list(store.as_of(version).iter_keys(batch_size=BATCH))
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def _entries(uri: str) -> list[Path]:
    sub = _kept.table_folder(Path(uri) / "samples.lance")
    return [] if sub is None else sorted(p for p in sub.glob("*.kept"))


def _live(keys: np.ndarray, *dead: np.ndarray) -> np.ndarray:
    return np.sort(np.setdiff1d(keys, np.concatenate(dead)))


def test_the_next_stream_takes_the_kept_drops_in_the_process_and_from_disk(
    tmp_path: Path, cache: Path, filtered: list[int]
) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    want = _live(keys, keys[::97])
    filtered.clear()  # (the delete's own lookups)
    first = _keys(s)
    assert np.array_equal(np.sort(first), want)
    assert sum(filtered) == N  # every key looked up once
    assert len(_entries(s.uri)) == 1
    filtered.clear()
    assert np.array_equal(_keys(s), first)  # the same keys in the same order
    assert filtered == []
    _new_process()
    again = Store.open(s.uri)
    assert np.array_equal(_keys(again), first)
    assert filtered == []
    # to_batches reads the same rows: it takes the entry too, and drops the same rows
    xs = np.concatenate([b.column(0).to_numpy() for b in again.as_of().to_batches(["key", "x"], batch_size=BATCH)])
    assert np.array_equal(xs, first) and filtered == []


def test_nothing_is_kept_where_the_filter_is_cheap_or_keeping_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, filtered: list[int]
) -> None:
    looked: list[str] = []
    real = _deadpos._find

    def find(table_dir: str, manifest: bytes, what: str) -> KeptDrops | None:
        looked.append(what)
        return real(table_dir, manifest, what)

    monkeypatch.setattr(_deadpos, "_find", find)
    named: list[int] = []
    source = TableValues.kept_source

    def kept_source(self: TableValues, name: str, ds: Any) -> tuple[str, bytes] | None:
        named.append(1)
        return source(self, name, ds)

    monkeypatch.setattr(TableValues, "kept_source", kept_source)
    monkeypatch.setenv(_kept.ENV, str(tmp_path / "cache"))
    for name, keys in (("sorted", np.arange(N)), ("dense", np.random.default_rng(1).permutation(N))):
        s = _store(f"{tmp_path}/{name}", keys.astype(np.int64))
        assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97]))
        assert _entries(s.uri) == []  # a search or a direct table: nothing to save
    assert looked == [] and named == []  # nor looked up (no manifest read, no digest of the dead set, no file)
    monkeypatch.setenv(_kept.ENV, "off")
    keys = _spread(N)
    t = _store(f"{tmp_path}/spread", keys)
    _keys(t)
    assert _entries(t.uri) == []


def test_each_version_content_and_dead_set_has_its_own_entry(tmp_path: Path, cache: Path, filtered: list[int]) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    before = s.version
    assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97]))
    # another delete: a new version and a new dead set
    s.delete(keys=keys[1::101], missing="ignore")
    _new_process()
    assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97], keys[1::101]))
    assert np.array_equal(np.sort(_keys(s, before)), _live(keys, keys[::97]))
    # an erase changes the dead set of every version, old ones included
    gone = keys[5::89]
    s.erase(gone, reason="test")
    _new_process()
    assert np.array_equal(np.sort(_keys(s, before)), _live(keys, keys[::97], gone))
    assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97], keys[1::101], gone))
    # a compaction writes other files (another manifest)
    s.compact()
    _new_process()
    assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97], keys[1::101], gone))


def test_a_snapshot_held_across_an_erase_drops_the_erased_keys(tmp_path: Path, cache: Path, filtered: list[int]) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    snap = s.as_of()
    _keys(s)  # the entry of the dead set before the erase
    gone = keys[2::50]
    s.erase(gone, reason="test")
    got = np.concatenate(list(snap.iter_keys(batch_size=BATCH)))
    assert np.array_equal(np.sort(got), _live(keys, keys[::97], gone))


def test_an_erase_mid_stream_applies_to_the_rest_and_keeps_nothing(
    tmp_path: Path, cache: Path, filtered: list[int]
) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    stream = s.as_of().iter_keys(batch_size=BATCH)
    head = next(stream)
    gone = np.setdiff1d(keys[3::40], head)  # keys not yielded yet
    Store.open(s.uri).erase(gone, reason="test")
    from modyn_store.core import _stream

    _stream.erased_here()  # (another process's erase is seen within ERASE_CHECK_S)
    rest = np.concatenate(list(stream))
    assert not np.isin(rest, gone).any()
    assert np.array_equal(np.sort(np.concatenate([head, rest])), _live(keys, keys[::97], gone))
    assert _entries(s.uri) == []  # its dead set changed: nothing kept


def test_a_user_filter_neither_takes_nor_keeps_drops(tmp_path: Path, cache: Path, filtered: list[int]) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    _keys(s)
    filtered.clear()
    half = [b.column(0).to_numpy() for b in s.as_of().to_batches(["key"], filter="ts < 15000", batch_size=BATCH)]
    got = np.concatenate(half)
    assert np.array_equal(np.sort(got), _live(keys[:15000], keys[::97]))
    assert sum(filtered) == 15000  # NumPy's filter, not the entry's unfiltered offsets


def test_an_entry_serves_only_its_version_and_dead_set(tmp_path: Path, cache: Path) -> None:
    named = (str(tmp_path / "t.lance"), b"a manifest")
    dead = np.array([4, 9])
    _deadpos.keep(*named, 3, dead, (np.array([1]), np.array([5])))
    for fresh in (False, True):
        if fresh:
            _new_process()
        found = _deadpos.find(*named, 3, dead)
        assert found is not None and found.offsets.tolist() == [1] and found.rows == 5
        assert _deadpos.find(*named, 4, dead) is None
        assert _deadpos.find(*named, 3, np.array([4, 10])) is None
        assert _deadpos.find(named[0], b"another manifest", 3, dead) is None


def _forge(s: Store, offsets: np.ndarray, rows: int) -> None:
    """Replace the store's entry by ``offsets`` under a valid digest (what a writer of the folder could do)."""
    ds = s._tables.open("samples")
    assert ds is not None
    named = s._tables.kept_source("samples", ds)
    assert named is not None
    dead = s.as_of()._with_unavailable(s.as_of()._dead())
    _deadpos.keep(*named, s.version, dead, (offsets.astype(np.int64), np.array([rows], np.int64)))
    _new_process()


def test_a_forged_entry_never_drops_a_live_row(tmp_path: Path, cache: Path, filtered: list[int]) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    want = _live(keys, keys[::97])
    order = _keys(s)  # the storage order of the live keys
    dead_at = np.flatnonzero(np.isin(keys, keys[::97]))
    # one live row (row 1 is live: keys[1] is not deleted) among the dead ones
    _forge(s, np.union1d(dead_at, [1]), N)
    assert np.array_equal(_keys(Store.open(s.uri)), order)
    # an entry of fewer rows than the stream: the rows past it are filtered
    filtered.clear()
    _forge(s, dead_at[dead_at < 10_000], 10_000)
    got = _keys(Store.open(s.uri))
    assert np.array_equal(np.sort(got), want) and np.array_equal(got, order)
    assert 0 < sum(filtered) < N


def test_a_damaged_entry_is_a_miss(tmp_path: Path, cache: Path, filtered: list[int]) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    order = _keys(s)
    (entry,) = _entries(s.uri)
    data = bytearray(entry.read_bytes())
    data[40] ^= 0xFF
    entry.write_bytes(bytes(data))
    _new_process()
    filtered.clear()
    assert np.array_equal(_keys(Store.open(s.uri)), order)
    assert sum(filtered) == N


@pytest.mark.parametrize(
    "arrays",
    [
        (np.array([3, 2]), np.array([10])),  # not ascending
        (np.array([1, 1]), np.array([10])),  # repeated
        (np.array([-1, 2]), np.array([10])),  # before the first row
        (np.array([2, 10]), np.array([10])),  # past the last row
        (np.array([2]), np.array([10, 11])),  # not one row count
        (np.array([2]),),  # no row count
    ],
)
def test_malformed_entries_are_not_read(arrays: tuple[np.ndarray, ...]) -> None:
    assert KeptDrops.parsed(arrays) is None


def test_a_batch_past_the_entry_or_a_live_key_is_not_answered() -> None:
    kept = KeptDrops(np.array([1, 5]), 6)
    dead = np.array([10, 50])
    first = kept.drops(np.array([0, 10, 2]), 0, dead)
    assert first is not None and first.tolist() == [1]
    assert kept.drops(np.array([3, 4, 50, 7]), 3, dead) is None  # rows 3-6: one past the entry
    assert kept.drops(np.array([3, 4, 7]), 3, dead) is None  # key 7 at row 5 is not dead
    assert kept.drops(np.array([0, 10, 2]), 0, dead) is None  # not used again after that


def test_a_stream_that_resumes_on_fresh_files_filters_again(
    tmp_path: Path, cache: Path, filtered: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modyn_store.core import _stream

    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    order = _keys(s)  # keeps the entry
    snap = s.as_of()

    def vanishing(ds: object) -> Iterator[pa.RecordBatch]:
        for n, b in enumerate(b for r in snap._readers(ds, ["key"], batch_size=BATCH) for b in r):
            if n == 2:
                raise OSError("file vanished")  # (a compaction removed the files meanwhile)
            yield b

    dead = snap._with_unavailable(snap._dead())
    looked: list[int] = []  # keys looked up in the dead set (not in the keys the stream yielded before)
    counted = engine._search.HashedKeys.hits

    def hits(self: engine._search.HashedKeys, a: np.ndarray) -> np.ndarray:
        if self.keys.size == dead.size:
            looked.append(a.size)
        return counted(self, a)

    monkeypatch.setattr(engine._search.HashedKeys, "hits", hits)
    ds = s._tables.open("samples")
    got = np.concatenate(list(_stream.live_stream(snap, [vanishing(ds)], ["key"], None, BATCH, keys_only=True,
                                                  source=ds)))
    assert np.array_equal(np.sort(got), np.sort(order)) and got.size == order.size
    assert sum(looked) == N  # the first two batches took the entry; the resumed stream looked up every key


def test_a_stream_dropping_more_than_an_entry_holds_keeps_nothing(
    tmp_path: Path, cache: Path, filtered: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _spread(N)
    s = _store(f"{tmp_path}/s", keys)
    monkeypatch.setattr(_kept, "MAX_ENTRY_BYTES", 8 * 100)  # (the stream drops 310 rows)
    assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97]))
    assert _entries(s.uri) == []
    filtered.clear()
    assert np.array_equal(np.sort(_keys(s)), _live(keys, keys[::97]))
    assert sum(filtered) == N  # filtered again: nothing was kept, in the process either
