"""as_of is exact for every version after any mix of writes and maintenance.

A hypothesis state machine drives the store and a plain-Python model side by side and, after
every step, compares every version's live set, unavailable set and row contents; read rules
compare delta/diff, contains/take/row_ids/locate of keys of every kind (live, deleted, erased,
purged, never inserted, repeated), count, iter_keys/to_batches with filters and small batches,
and reads by tag, on random versions.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from modyn_store import Store
from modyn_store.core.errors import DataUnavailableError, UnknownKeyError


@dataclass
class Model:
    """The obvious semantics, written without the store."""

    versions: int = 0
    inserted: dict[int, int] = field(default_factory=dict)  # key -> version
    payload: dict[int, str] = field(default_factory=dict)
    deleted: dict[int, int] = field(default_factory=dict)  # key -> version
    erased: set[int] = field(default_factory=set)
    erased_at: dict[int, int] = field(default_factory=dict)  # key -> version of its erase
    purged: set[int] = field(default_factory=set)
    tags: dict[str, int] = field(default_factory=dict)
    next_key: int = 0

    def live(self, v: int) -> set[int]:
        return {
            k
            for k, iv in self.inserted.items()
            if iv <= v and not (k in self.deleted and self.deleted[k] <= v) and k not in self.erased
        }

    def unavailable(self, v: int) -> set[int]:
        return self.live(v) & self.purged

    def purgeable(self, keep: int) -> set[int]:
        cutoff = self.versions - keep + 1
        out = set()
        for k, dv in self.deleted.items():
            if k in self.erased or k in self.purged or dv > cutoff:
                continue
            iv = self.inserted[k]
            if any(iv <= t < dv for t in self.tags.values()):
                continue
            out.add(k)
        return out


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.store = Store.open(self.dir.name + "/s", create=True)
        self.model = Model()

    def teardown(self) -> None:
        self.dir.cleanup()

    @rule(n=st.integers(1, 6), user_keys=st.booleans(), gap=st.integers(0, 3))
    def append(self, n: int, user_keys: bool, gap: int) -> None:
        m = self.model
        start = m.next_key + gap if user_keys else m.next_key
        keys = list(range(start, start + n))
        text = [f"payload-{k}-{m.versions + 1}" for k in keys]
        data = {"ts": list(range(n)), "text": text}
        if user_keys:
            data = {"key": keys, **data}
        rec = self.store.append(pa.table(data))
        m.versions += 1
        assert rec.version == m.versions
        for k, t in zip(keys, text):
            m.inserted[k] = m.versions
            m.payload[k] = t
        m.next_key = start + n

    @precondition(lambda self: bool(self.model.live(self.model.versions)))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        m = self.model
        live = sorted(m.live(m.versions))
        chosen = data.draw(st.lists(st.sampled_from(live), min_size=1, max_size=3, unique=True))
        self.store.delete(keys=chosen)
        m.versions += 1
        for k in chosen:
            m.deleted[k] = m.versions

    @precondition(lambda self: bool(set(self.model.inserted) - self.model.erased))
    @rule(data=st.data())
    def erase(self, data: st.DataObject) -> None:
        m = self.model
        stored = sorted(set(m.inserted) - m.erased)
        chosen = data.draw(st.lists(st.sampled_from(stored), min_size=1, max_size=2, unique=True))
        report = self.store.erase(chosen, reason="test")
        m.versions += 1
        assert report.version == m.versions
        m.erased.update(chosen)
        for k in chosen:
            m.erased_at[k] = m.versions

    @rule()
    def compact(self) -> None:
        self.store.compact()

    @precondition(lambda self: self.model.versions > 0)
    @rule(data=st.data())
    def tag(self, data: st.DataObject) -> None:
        m = self.model
        v = data.draw(st.integers(1, m.versions))
        name = f"t{len(m.tags)}"
        if m.unavailable(v):  # a tag promises a readable version: one whose rows were purged is refused
            with pytest.raises(DataUnavailableError) as err:
                self.store.tag(name, v)
            assert set(err.value.keys.tolist()) == m.unavailable(v) and self.store.version == m.versions
            return
        self.store.tag(name, v)
        m.versions += 1
        m.tags[name] = v

    @rule(keep=st.integers(1, 4), dry=st.booleans())
    def vacuum(self, keep: int, dry: bool) -> None:
        m = self.model
        expected = m.purgeable(keep)
        report = self.store.vacuum(keep_versions=keep, dry_run=dry)
        assert set(report.keys.tolist()) == expected
        if not dry and expected:
            m.versions += 1
            m.purged |= expected

    @precondition(lambda self: bool(self.model.purgeable(1)))
    @rule(keep=st.integers(1, 2))
    def vacuum_purge(self, keep: int) -> None:
        self.vacuum(keep, dry=False)

    # -- read APIs other than keys/unavailable/to_table, checked on random versions ----------
    def _keys_to_probe(self, data: st.DataObject) -> list[int]:
        """Keys of every kind: live, deleted, erased, purged, never inserted (and negative)."""
        m = self.model
        pool = sorted(set(m.inserted) | {-1, m.next_key, m.next_key + 7})
        return data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6))

    @precondition(lambda self: self.store.schema is not None)  # (columns=["text"] needs a sample)
    @rule(data=st.data())
    def check_delta(self, data: st.DataObject) -> None:
        m = self.model
        b = data.draw(st.integers(0, m.versions))
        a = data.draw(st.integers(0, b))
        d = self.store.delta(a, b, ["text"], on_unavailable="skip")
        rows = d.inserted
        got = dict(zip(rows.column("key").to_pylist(), rows.column("text").to_pylist()))
        want_ins = {
            k for k, iv in m.inserted.items() if a < iv <= b and k not in m.erased and k not in m.purged
        }
        assert got == {k: m.payload[k] for k in want_ins}, (a, b)
        assert rows.num_rows == len(want_ins), (a, b)
        vers = dict(zip(rows.column("key").to_pylist(), rows.column("version").to_pylist()))
        assert vers == {k: m.inserted[k] for k in want_ins}, (a, b)
        # (a key erased since is erased at every version: in no delta's deleted)
        gone_between = sorted(k for k, dv in m.deleted.items() if a < dv <= b and k not in m.erased)
        assert d.deleted.tolist() == gone_between, (a, b)
        assert d.erased.tolist() == sorted(k for k, ev in m.erased_at.items() if a < ev <= b), (a, b)
        purged_ins = {k for k, iv in m.inserted.items() if a < iv <= b and k in m.purged and k not in m.erased}
        if purged_ins:
            with pytest.raises(DataUnavailableError) as err:
                self.store.delta(a, b)
            assert set(np.asarray(err.value.keys).tolist()) == purged_ins
        else:
            assert self.store.delta(a, b).inserted.num_rows == len(want_ins)
        diff = self.store.diff(a, b)
        assert set(diff.inserted.tolist()) == m.live(b) - m.live(a), (a, b)
        assert set(diff.deleted.tolist()) == m.live(a) - m.live(b), (a, b)

    @rule(data=st.data())
    def check_points(self, data: st.DataObject) -> None:
        m = self.model
        v = data.draw(st.integers(0, m.versions))
        keys = self._keys_to_probe(data)
        snap = self.store.as_of(v)
        live = m.live(v)
        assert snap.contains(keys).tolist() == [k in live for k in keys], (v, keys)
        assert snap.count() == len(live), v
        dead = [k for k in keys if k not in live]
        purged = [k for k in keys if k in live and k in m.purged]
        if self.store.schema is None:
            return
        if dead:
            with pytest.raises(UnknownKeyError):
                snap.take(keys, ["key", "text"])
            with pytest.raises(UnknownKeyError):
                snap.row_ids(keys)
        elif purged:
            with pytest.raises(DataUnavailableError) as err:
                snap.take(keys, ["key", "text"])
            assert set(np.asarray(err.value.keys).tolist()) <= set(purged)
            with pytest.raises(DataUnavailableError):
                snap.row_ids(keys)
        else:
            t = snap.take(keys, ["key", "text"])
            assert t.column("key").to_pylist() == keys, (v, keys)
            assert t.column("text").to_pylist() == [m.payload[k] for k in keys], (v, keys)
            assert len(snap.row_ids(keys)) == len(keys)
        fids = snap.locate(keys)[1]
        assert [f >= 0 for f in fids.tolist()] == [k in live and k not in m.purged for k in keys], (v, keys)

    @rule(data=st.data(), size=st.integers(1, 4))
    def check_streams(self, data: st.DataObject, size: int) -> None:
        m = self.model
        v = data.draw(st.integers(0, m.versions))
        snap = self.store.as_of(v)
        readable = m.live(v) - m.unavailable(v)
        got = [k for arr in snap.iter_keys(batch_size=size) for k in arr.tolist()]
        assert all(arr.size <= size for arr in snap.iter_keys(batch_size=size))
        assert sorted(got) == sorted(readable), v
        if self.store.schema is None:
            return
        lo = data.draw(st.integers(0, max(m.next_key, 1)))
        batches = list(snap.to_batches(["text"], filter=f"key >= {lo}", batch_size=size, on_unavailable="skip"))
        assert all(b.num_rows <= size for b in batches)
        texts = [t for b in batches for t in b.column("text").to_pylist()]
        assert sorted(texts) == sorted(m.payload[k] for k in readable if k >= lo), (v, lo)

    @precondition(lambda self: self.store.schema is not None)
    @rule()
    def index_keys(self) -> None:
        self.store.index_keys()

    @precondition(lambda self: bool(self.model.tags))
    @rule(data=st.data())
    def check_tag(self, data: st.DataObject) -> None:
        m = self.model
        name = data.draw(st.sampled_from(sorted(m.tags)))
        assert self.store.tags()[name] == m.tags[name]
        assert set(self.store.as_of(name).keys().tolist()) == m.live(m.tags[name])

    @invariant()
    def every_version_is_exact(self) -> None:
        m = self.model
        assert self.store.version == m.versions
        for v in range(m.versions + 1):
            snap = self.store.as_of(v)
            want = m.live(v)
            assert set(snap.keys().tolist()) == want, f"version {v}"
            assert set(snap.unavailable().tolist()) == m.unavailable(v), f"version {v}"
            if self.store.schema is None:
                assert not want
                continue
            table = snap.to_table(["key", "text"], on_unavailable="skip")
            got = dict(zip(table.column("key").to_pylist(), table.column("text").to_pylist()))
            readable = want - m.unavailable(v)
            assert got == {k: m.payload[k] for k in readable}, f"version {v}"


def machine_settings(examples: int, steps: int) -> settings:
    """Hypothesis settings of a state machine run: ``examples`` runs of ``steps`` rules."""
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class TestStoreSemantics(StoreMachine.TestCase):  # type: ignore[name-defined]
    settings = machine_settings(20, 12)


@pytest.mark.slow
class TestStoreSemanticsLong(StoreMachine.TestCase):  # type: ignore[name-defined]
    settings = machine_settings(150, 25)


def test_model_reference_is_not_trivial() -> None:
    """The model itself distinguishes deleted, erased and purged keys."""
    m = Model(versions=3, inserted={1: 1, 2: 1, 3: 2}, deleted={1: 3}, erased={2}, purged={1})
    assert m.live(1) == {1}
    assert m.live(2) == {1, 3}
    assert m.live(3) == {3}
    assert m.unavailable(2) == {1}
    assert np.array_equal(sorted(m.live(2)), [1, 3])


def test_filtered_stream_keeps_to_its_batch_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A filter over rows rewritten by erase, compact and vacuum: no batch exceeds batch_size."""
    s = Store.open(str(tmp_path / "s"), create=True)
    s.append(pa.table({"key": [1], "ts": [0], "text": ["a"]}))
    s.append(pa.table({"ts": list(range(5)), "text": list("bcdef")}))
    s.append(pa.table({"ts": [0], "text": ["g"]}))
    s.compact()
    s.erase([7], reason="test")
    s.append(pa.table({"ts": [0], "text": ["h"]}))
    s.compact()
    s.delete(keys=[1, 2])
    s.append(pa.table({"ts": [0, 1], "text": ["i", "j"]}))
    s.erase([8, 9], reason="test")
    s.compact()
    s.vacuum(keep_versions=1, dry_run=False)
    for v in range(s.version + 1):
        snap = s.as_of(v)
        sizes = [b.num_rows for b in snap.to_batches(["text"], filter="key >= 4", batch_size=3, on_unavailable="skip")]
        assert all(n <= 3 for n in sizes), (v, sizes)
        assert all(a.size <= 2 for a in snap.iter_keys(batch_size=2)), v
