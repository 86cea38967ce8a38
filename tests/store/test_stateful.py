"""as_of is exact for every version after any mix of writes and maintenance.

A hypothesis state machine drives the store and a plain-Python model side by side and, after
every step, compares every version's live set, unavailable set and row contents.
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


@dataclass
class Model:
    """The obvious semantics, written without the store."""

    versions: int = 0
    inserted: dict[int, int] = field(default_factory=dict)  # key -> version
    payload: dict[int, str] = field(default_factory=dict)
    deleted: dict[int, int] = field(default_factory=dict)  # key -> version
    erased: set[int] = field(default_factory=set)
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

    @rule()
    def compact(self) -> None:
        self.store.compact()

    @precondition(lambda self: self.model.versions > 0)
    @rule(data=st.data())
    def tag(self, data: st.DataObject) -> None:
        m = self.model
        v = data.draw(st.integers(1, m.versions))
        name = f"t{len(m.tags)}"
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


class TestStoreSemantics(StoreMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(
        max_examples=20, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


@pytest.mark.slow
class TestStoreSemanticsLong(StoreMachine.TestCase):  # type: ignore[name-defined]
    settings = settings(
        max_examples=150, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


def test_model_reference_is_not_trivial() -> None:
    """The model itself distinguishes deleted, erased and purged keys."""
    m = Model(versions=3, inserted={1: 1, 2: 1, 3: 2}, deleted={1: 3}, erased={2}, purged={1})
    assert m.live(1) == {1}
    assert m.live(2) == {1, 3}
    assert m.live(3) == {3}
    assert m.unavailable(2) == {1}
    assert np.array_equal(sorted(m.live(2)), [1, 3])
