"""Score tables and keyed extension tables read as of every version, after any mix of writes and
maintenance.

Extends the state machine of ``test_stateful`` (its rules and invariant run too) with score
writes (one score or several per version, with and without a training id) and rows of an
extension table with an int64 ``key`` column. The model keeps every write with its version; reads
of old versions are compared against it after deletes (a deleted key's scores stay readable as of
the versions where it was live), erasures (an erased key's scores and extension rows are gone from
every version), vacuum (a purged key's scores are gone: reads of the versions where it was live
raise, or skip it) and compaction (nothing changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from modyn_store.core import _score_stream
from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError, UnknownKeyError
from modyn_store.core.records import VersionRecord
from modyn_store.core.snapshot import OnUnavailable
from tests.store.test_stateful import Model, StoreMachine, machine_settings

NAMES = ("loss", "entropy")
NOTES = "notes"


@dataclass
class ScoreModel(Model):
    """Every score write and extension row, with the version that wrote it."""

    # name -> [(version, {key: (value, training_id)})], oldest first
    scores: dict[str, list[tuple[int, dict[int, tuple[float, str | None]]]]] = field(default_factory=dict)
    notes: list[tuple[int, int, str]] = field(default_factory=list)  # (version, key, note)

    def scores_as_of(self, name: str, v: int) -> dict[int, tuple[float, str | None, int]]:
        """key -> (value, training_id, version) of the latest write at or before ``v``, for the
        keys live at ``v`` whose rows vacuum has not purged (erased keys are live at no version)."""
        out: dict[int, tuple[float, str | None, int]] = {}
        for w, rows in self.scores.get(name, []):
            if w <= v:
                out.update({k: (val, tid, w) for k, (val, tid) in rows.items()})
        readable = self.live(v) - self.purged
        return {k: out[k] for k in sorted(out) if k in readable}

    def notes_as_of(self, v: int, lo: int | None = None) -> list[tuple[int, str, int]]:
        """(key, note, version) of the extension rows written at or before ``v``, erased keys' left out."""
        return sorted(
            (k, note, w) for w, k, note in self.notes if w <= v and k not in self.erased and (lo is None or k >= lo)
        )


class ScoresMachine(StoreMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model: ScoreModel = ScoreModel()
        # runs read a row or two at a time for small batches: the merge then takes many steps
        self._min_run_batch = _score_stream._MIN_RUN_BATCH
        _score_stream._MIN_RUN_BATCH = 1

    def teardown(self) -> None:
        _score_stream._MIN_RUN_BATCH = self._min_run_batch
        super().teardown()

    def _versions(self, data: st.DataObject) -> int:
        return data.draw(st.integers(0, self.model.versions))

    # -- writes ------------------------------------------------------------------------------
    @initialize(n=st.integers(0, 6), data=st.data())
    def start(self, n: int, data: st.DataObject) -> None:
        """Some samples and scores to begin with (or an empty store, for ``n=0``): otherwise most
        runs would spend their steps reaching a state where old versions' scores differ."""
        if n:
            self.append(n, user_keys=False, gap=0)
            for _ in range(data.draw(st.integers(0, 2))):
                self._write_scores(data, both=data.draw(st.booleans()), tid=None)

    def _write_scores(self, data: st.DataObject, both: bool, tid: str | None) -> None:
        m = self.model
        live = sorted(m.live(m.versions))
        keys = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=4, unique=True))
        names = NAMES if both else (data.draw(st.sampled_from(NAMES)),)
        v = m.versions + 1
        # distinct per (name, key, version): a value read from the wrong write cannot match
        values = {n: np.array([v + k / 1000 + i / 10 for k in keys]) for i, n in enumerate(names)}
        if both:
            rec = self.store.scores.write_many(keys, values, training_id=tid)
        else:
            rec = self.store.scores.write(names[0], keys, values[names[0]], training_id=tid)
        m.versions += 1
        assert rec.version == m.versions
        for n in names:
            rows = {k: (float(x), tid) for k, x in zip(keys, values[n])}
            m.scores.setdefault(n, []).append((m.versions, rows))

    @precondition(lambda self: bool(self.model.live(self.model.versions)))
    @rule(
        data=st.data(),
        both=st.booleans(),
        tid=st.sampled_from([None, "run-a", "run-b"]),
        rounds=st.integers(1, 2),
        then_compact=st.booleans(),
    )
    def write_scores(self, data: st.DataObject, both: bool, tid: str | None, rounds: int, then_compact: bool) -> None:
        """Scores of live keys, in ``rounds`` versions (``then_compact``: merged at once with
        earlier writes' files, so reads of old versions meet fragments holding several versions)."""
        for _ in range(rounds):
            self._write_scores(data, both, tid)
        if then_compact:
            self.store.compact()

    def _scored(self) -> set[int]:
        return {k for writes in self.model.scores.values() for _, rows in writes for k in rows}

    @precondition(lambda self: bool(self._scored() & self.model.live(self.model.versions)))
    @rule(data=st.data(), then_vacuum=st.booleans())
    def delete_scored(self, data: st.DataObject, then_vacuum: bool) -> None:
        """Delete keys that have scores: later versions leave them out. ``then_vacuum``: purged
        at once, their scores leave the files, and reads of the versions where they were live
        raise or skip them."""
        m = self.model
        chosen = data.draw(st.lists(st.sampled_from(sorted(self._scored() & m.live(m.versions))), min_size=1,
                                    max_size=2, unique=True))
        self.store.delete(keys=chosen)
        m.versions += 1
        for k in chosen:
            m.deleted[k] = m.versions
        if then_vacuum:
            self.vacuum(1, dry=False)

    @precondition(lambda self: bool(self._scored() - self.model.erased))
    @rule(data=st.data())
    def erase_scored(self, data: st.DataObject) -> None:
        """Erase keys that have scores (live, deleted or purged): gone from every version."""
        m = self.model
        chosen = data.draw(st.lists(st.sampled_from(sorted(self._scored() - m.erased)), min_size=1, max_size=2,
                                    unique=True))
        report = self.store.erase(chosen, reason="test")
        m.versions += 1
        assert report.version == m.versions
        m.erased.update(chosen)
        m.erased_at.update({k: m.versions for k in chosen})

    @rule(data=st.data())
    def write_scores_of_dead_keys(self, data: st.DataObject) -> None:
        """Scores of keys not live now (deleted, erased, purged, never stored) are refused,
        and nothing is written."""
        m = self.model
        dead = sorted((set(m.inserted) | {m.next_key, m.next_key + 5}) - m.live(m.versions))
        keys = data.draw(st.lists(st.sampled_from(dead), min_size=1, max_size=3, unique=True))
        live = sorted(m.live(m.versions))
        keys += data.draw(st.lists(st.sampled_from(live), max_size=2, unique=True)) if live else []
        with pytest.raises(UnknownKeyError):
            self.store.scores.write(data.draw(st.sampled_from(NAMES)), keys, np.ones(len(keys)))
        assert self.store.version == m.versions

    @rule(data=st.data(), with_samples=st.booleans())
    def write_notes(self, data: st.DataObject, with_samples: bool) -> None:
        """Rows of a keyed extension table, naming any key (deleted, purged and never stored ones
        too): refused, with nothing written, if one is erased."""
        m = self.model
        pool = sorted(set(m.inserted) | {m.next_key + 3, m.next_key + 9})
        keys = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        v = m.versions + 1
        notes = [f"note-{k}-{v}-{i}" for i, k in enumerate(keys)]
        rows = pa.table({"key": pa.array(keys, pa.int64()), "note": notes})
        refused = bool(set(keys) & m.erased)
        new_key = max(m.next_key, *(k + 1 for k in keys)) + 20  # beyond every key used above
        rec: VersionRecord | None
        try:
            if with_samples:  # in the same version as an append of a sample
                sample = pa.table({"key": [new_key], "ts": [0], "text": [f"payload-{new_key}-{v}"]})
                rec = self.store.append(sample, tables={NOTES: rows})
            else:
                with self.store.transaction("notes") as txn:
                    txn.append(NOTES, rows)
                rec = txn.record
        except UnknownKeyError:
            assert refused, keys
            assert self.store.version == m.versions
            return
        assert not refused, keys
        assert rec is not None and rec.version == v
        m.versions = v
        m.notes.extend((v, k, n) for k, n in zip(keys, notes))
        if with_samples:
            m.inserted[new_key] = v
            m.payload[new_key] = f"payload-{new_key}-{v}"
            m.next_key = new_key + 1

    # -- reads -------------------------------------------------------------------------------
    def _check_scores(self, name: str, v: int, mode: OnUnavailable, batch_size: int | None = None) -> None:
        m = self.model
        want = m.scores_as_of(name, v)
        unavailable = m.unavailable(v)
        if name not in m.scores:
            with pytest.raises(InvalidArgumentError):
                self.store.scores.as_of(v, name, on_unavailable=mode)
            return
        if mode == "error" and unavailable:
            with pytest.raises(DataUnavailableError) as err:
                self.store.scores.as_of(v, name)
            assert set(np.asarray(err.value.keys).tolist()) == unavailable, (name, v)
            with pytest.raises(DataUnavailableError):
                list(self.store.scores.batches(v, name, batch_size=batch_size or 2))
            return
        scores = self.store.scores
        if batch_size is None:
            t = scores.as_of(v, name, on_unavailable=mode)
        else:
            batches = list(scores.batches(v, name, batch_size=batch_size, on_unavailable=mode))
            sizes = [b.num_rows for b in batches]
            assert all(n == batch_size for n in sizes[:-1]) and sizes[-1:] <= [batch_size], (name, v, sizes)
            t = pa.Table.from_batches(batches, schema=scores.as_of(0, name).schema)
        got_keys = t.column("key").to_pylist()
        assert got_keys == list(want), (name, v, mode, batch_size, got_keys, want)
        got = list(zip(*(t.column(c).to_pylist() for c in ("value", "training_id", "version"))))
        assert got == list(want.values()), (name, v, mode, batch_size)

    @rule(data=st.data(), mode=st.sampled_from(["error", "skip"]), batch_size=st.sampled_from([None, 1, 2, 5]))
    def check_scores(self, data: st.DataObject, mode: OnUnavailable, batch_size: int | None) -> None:
        name = data.draw(st.sampled_from(NAMES))
        self._check_scores(name, self._versions(data), mode, batch_size)

    @precondition(lambda self: bool(self.model.tags) and bool(self.model.scores))
    @rule(data=st.data())
    def check_scores_by_tag(self, data: st.DataObject) -> None:
        m = self.model
        tag = data.draw(st.sampled_from(sorted(m.tags)))
        name = data.draw(st.sampled_from(sorted(m.scores)))
        t = self.store.scores.as_of(tag, name, on_unavailable="skip")
        assert t.column("key").to_pylist() == list(m.scores_as_of(name, m.tags[tag])), (tag, name)

    def _notes(self, version: int | str, lo: int | None = None) -> list[tuple[int, str, int]] | None:
        t = self.store.read_table(NOTES, version, filter=None if lo is None else f"key >= {lo}")
        if t is None:
            return None
        return sorted(zip(*(t.column(c).to_pylist() for c in ("key", "note", "_version"))))

    @rule(data=st.data(), filtered=st.booleans(), by_tag=st.booleans())
    def check_notes(self, data: st.DataObject, filtered: bool, by_tag: bool) -> None:
        m = self.model
        ref: int | str = self._versions(data)
        if by_tag and m.tags:
            ref = data.draw(st.sampled_from(sorted(m.tags)))
        v = m.tags[ref] if isinstance(ref, str) else ref
        lo = data.draw(st.integers(-1, m.next_key + 10)) if filtered else None
        got = self._notes(ref, lo)
        # the table exists once a write of it committed (a refused first write leaves none)
        assert got == (m.notes_as_of(v, lo) if m.notes else None), (ref, lo)

    @invariant()
    def scores_and_notes_of_every_version(self) -> None:
        for v in range(self.model.versions + 1):
            for name in self.model.scores:
                self._check_scores(name, v, "skip")
                self._check_scores(name, v, "skip", batch_size=2)
                if self.model.unavailable(v):
                    self._check_scores(name, v, "error")
            if self.model.notes:
                assert self._notes(v) == self.model.notes_as_of(v), f"version {v}"
                assert self._notes(v, lo=1) == self.model.notes_as_of(v, lo=1), f"version {v}, filtered"


class TestScoresAndExtensions(ScoresMachine.TestCase):  # type: ignore[name-defined]
    settings = machine_settings(20, 20)


@pytest.mark.slow
class TestScoresAndExtensionsLong(ScoresMachine.TestCase):  # type: ignore[name-defined]
    settings = machine_settings(80, 30)


def test_score_model_reference_is_not_trivial() -> None:
    """The model keeps the latest score at or before a version, and drops deleted (later),
    erased and purged keys."""
    m = ScoreModel(versions=5, inserted={1: 1, 2: 1, 3: 1}, deleted={1: 4, 3: 4}, erased={2}, purged={3})
    m.scores["loss"] = [(2, {1: (0.5, None), 2: (0.1, None), 3: (0.2, None)}), (3, {1: (0.7, "t")})]
    m.notes = [(2, 1, "a"), (2, 2, "b"), (5, 3, "c")]
    assert m.scores_as_of("loss", 1) == {}
    assert m.scores_as_of("loss", 2) == {1: (0.5, None, 2)}
    assert m.scores_as_of("loss", 3) == {1: (0.7, "t", 3)}
    assert m.scores_as_of("loss", 4) == {}
    assert m.notes_as_of(4) == [(1, "a", 2)]
    assert m.notes_as_of(5, lo=2) == [(3, "c", 5)]
