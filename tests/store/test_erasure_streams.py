"""Streams open across an erase of their own process: once ``erase`` returns, no later batch
holds an erased row, whatever the time since the stream last looked for erasures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core import _stream


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    # streams look for other processes' erasures only every hour: what is checked here is the
    # erase of this process, which must apply at the next batch
    monkeypatch.setattr(_stream, "ERASE_CHECK_S", 3600.0)
    s = Store.open(str(tmp_path / "s"), create=True)
    keys = np.arange(400)
    s.append(pa.table({"key": keys, "ts": keys, "text": [f"secret-{k}" for k in keys]}))
    s.scores.write("loss", keys, keys * 0.5)
    return s


@pytest.mark.parametrize("other_handle", [False, True])
def test_a_samples_stream_drops_rows_erased_by_its_process_at_once(store: Store, other_handle: bool) -> None:
    stream = iter(store.as_of().to_batches(batch_size=10))
    first = next(stream)
    assert first.column("key").to_pylist() == list(range(10))
    victims = [250, 251, 399]
    (Store.open(store.uri) if other_handle else store).erase(victims, reason="user request")
    rest = pa.Table.from_batches(list(stream))
    assert not np.isin(victims, rest.column("key").to_numpy()).any()
    assert not {f"secret-{k}" for k in victims} & set(rest.column("text").to_pylist())
    assert rest.num_rows == 390 - len(victims)


def test_a_score_stream_drops_keys_erased_by_its_process_at_once(store: Store) -> None:
    stream = store.scores.batches(None, "loss", batch_size=10)
    first = next(stream)
    assert first.column("key").to_pylist()[0] == 0
    victims = [250, 251, 399]
    store.erase(victims, reason="user request")
    rest = np.concatenate([b.column("key").to_numpy() for b in stream])
    assert not np.isin(victims, rest).any()
    assert rest.size == 400 - first.num_rows - len(victims)


def test_a_score_stream_drops_erased_keys_from_every_later_batch(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """One merge step's rows are cut into many batches: all of them, not only the first one
    after the erase was seen, lose the erased keys (the later ones kept them before)."""
    monkeypatch.setattr(_stream, "ERASE_CHECK_S", 0.0)  # every batch looks for erasures
    stream = store.scores.batches(None, "loss", batch_size=10)
    first = next(stream)
    victims = [250, 251, 399]
    store.erase(victims, reason="user request")
    rest = np.concatenate([b.column("key").to_numpy() for b in stream])
    assert not np.isin(victims, rest).any()
    assert np.array_equal(np.concatenate([first.column("key").to_numpy(), rest]), np.setdiff1d(np.arange(400), victims))


@pytest.mark.parametrize("keys_only", [False, True])
def test_slices_of_an_oversized_batch_are_checked_again_after_an_erase(
        store: Store, monkeypatch: pytest.MonkeyPatch, keys_only: bool) -> None:
    """A batch Lance hands back larger than asked (it may under a filter) is cut into slices of
    ``batch_size``; an erase committed while the first slices were consumed reached the later
    slices of that batch only at the next batch. Lance is made to read 10 times the rows asked."""
    from modyn_store.core import snapshot

    readers = snapshot.Snapshot._readers

    def oversized(self: snapshot.Snapshot, ds: object, read: object, filter: object = None,  # noqa: A002
                  batch_size: int | None = None, **kw: object) -> object:
        return readers(self, ds, read, filter, batch_size=None if batch_size is None else batch_size * 10, **kw)

    monkeypatch.setattr(snapshot.Snapshot, "_readers", oversized)
    snap = store.as_of()
    stream = iter(snap.iter_keys(batch_size=10) if keys_only else snap.to_batches(batch_size=10))
    first = next(stream)
    assert len(first) == 10
    victims = [20, 21, 399, *range(30, 40)]  # in the slices of the first 100-row batch; 30-39 a whole slice
    store.erase(victims, reason="user request")
    rest = list(stream)
    got = np.concatenate([np.asarray(b) if keys_only else b.column("key").to_numpy() for b in rest])
    assert not np.isin(victims, got).any() and got.size == 390 - len(victims)
    assert all(len(b) for b in rest)  # no empty batch
