"""Deltas without labels: triggers that do not read them fire exactly as with them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from policy_testkit import ThresholdModel

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies import AnyOf, DataAmount, DataDrift, Deletion, Performance, Time, TriggerInput

LABEL_FREE = [lambda: Time(every=17, start=0), lambda: DataAmount(every=13), lambda: Deletion(share=0.01),
              lambda: DataDrift(columns=["x"], every=40, window=40)]


def _store(tmp_path) -> Store:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    s = Store.open(str(tmp_path / "s"), create=True)
    for v in range(4):
        n = 60
        s.append(pa.table({"ts": np.arange(v * n, (v + 1) * n), "label": rng.integers(0, 2, n),
                           "x": rng.normal(v, 1, n)}))
        s.delete(keys=np.array([2 * v + 2, 2 * v + 3]))  # rows of the first version
    return s


@pytest.mark.parametrize("make", LABEL_FREE)
def test_label_free_triggers_fire_the_same_without_labels(tmp_path, make) -> None:  # type: ignore[no-untyped-def]
    store = _store(tmp_path)
    with_labels, without = make(), make()
    assert not without.reads_labels
    fired = 0
    for t in (with_labels, without):  # the deletion trigger measures against a train set
        t.on_training(TrainSet.uniform(store.as_of(2).keys(), version=2))
    for v in range(1, store.version + 1):
        cols = list(without.columns) or None
        full = store.delta(v - 1, v, columns=cols)
        bare = store.delta(v - 1, v, columns=cols, labels=False)
        assert "label" in full.inserted.column_names and "label" not in bare.inserted.column_names
        a = with_labels.fire(TriggerInput.from_delta(full, columns=with_labels.columns))
        b = without.fire(TriggerInput.from_delta(bare, columns=without.columns))
        assert [(f.version, f.position) for f in a] == [(f.version, f.position) for f in b]
        fired += len(a)
    assert fired  # the comparison is not between two silent triggers


def test_a_composite_reads_labels_when_a_member_does() -> None:
    assert not AnyOf(triggers=[Time(every=5), DataAmount(every=3)]).reads_labels
    assert AnyOf(triggers=[Time(every=5), Performance(columns=["x"], every=10, threshold=0.5)]).reads_labels
    assert Performance(columns=["x"], every=10, threshold=0.5).reads_labels  # needs them: refuses without


def test_delta_labels_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _store(tmp_path)
    d = store.delta(0, store.version, labels=False)
    assert d.inserted.column_names == ["key", "ts", "version"]
    assert store.delta(0, store.version, columns=["label"], labels=False).inserted.column_names == \
        ["key", "ts", "label", "version"]
    full = store.delta(0, store.version)
    assert d.inserted.column("key").to_pylist() == full.inserted.column("key").to_pylist()
    assert d.inserted.column("version").to_pylist() == full.inserted.column("version").to_pylist()
    with pytest.raises(InvalidArgumentError, match="labels"):
        store.delta(0, 1, labels="no")  # type: ignore[arg-type]
    perf = Performance(columns=["x"], every=10, threshold=0.5)
    with pytest.raises(InvalidArgumentError, match="labels"):
        perf.fire(TriggerInput.from_delta(store.delta(0, 1, columns=["x"], labels=False), columns=["x"]),
                  ThresholdModel(cut=0.5))
