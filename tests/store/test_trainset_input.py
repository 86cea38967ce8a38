"""Bad input to ``TrainSet`` and ``Catalog.record_training`` is refused with a typed error, not coerced.

Each refusal names the argument; a refused ``record_training`` leaves the store unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError, UnknownVersionError
from modyn_store.core.trainings import Catalog
from modyn_store.core.trainset import TrainSet

BAD_KEYS = [
    pytest.param(np.array([1.9, 2.7]), id="float-array"),
    pytest.param([1.5, 2.0], id="float-list"),
    pytest.param(np.array([np.nan, 1.0]), id="nan"),
    pytest.param(np.array([2**63 + 5, 1], dtype=np.uint64), id="uint64-above-int64"),
    pytest.param(["3"], id="str"),
    pytest.param(np.array(["3", "4"]), id="str-array"),
    pytest.param([True, False], id="bool-list"),
    pytest.param(np.array([True]), id="bool-array"),
    pytest.param(pa.array([1, None], pa.int64()), id="arrow-null"),
    pytest.param(pa.array([1.0, 2.0]), id="arrow-float"),
    pytest.param(np.array([[1, 2]]), id="2d"),
    pytest.param(np.int64(5), id="scalar"),
    pytest.param([[1], [2, 3]], id="ragged"),
]


@pytest.mark.parametrize("keys", BAD_KEYS)
def test_bad_keys_are_refused(keys: Any) -> None:
    n = 2 if not isinstance(keys, np.integer) else 1
    with pytest.raises(InvalidArgumentError, match=r"\bkeys\b") as info:
        TrainSet(keys=keys, weights=np.ones(n), version=1)
    assert info.value.name == "keys"


@pytest.mark.parametrize("keys", BAD_KEYS)
def test_uniform_refuses_bad_keys(keys: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\bkeys\b"):
        TrainSet.uniform(keys, version=1)


@pytest.mark.parametrize(
    "version",
    [
        pytest.param(1.7, id="float"),
        pytest.param(1.0, id="integral-float"),
        pytest.param(True, id="bool"),
        pytest.param(np.True_, id="np-bool"),
        pytest.param(None, id="none"),
        pytest.param("1", id="str"),
        pytest.param(-1, id="negative"),
        pytest.param(np.float64(2.0), id="np-float"),
    ],
)
def test_bad_version_is_refused(version: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="version") as info:
        TrainSet(keys=[1, 2], weights=np.ones(2), version=version)
    assert info.value.name == "version"
    with pytest.raises(InvalidArgumentError, match="version"):
        TrainSet.uniform([1, 2], version=version)


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param(["a", "b"], id="str"),
        pytest.param([1.0, None], id="none"),
        pytest.param(np.array([1 + 0j, 2 + 1j]), id="complex"),
        pytest.param(np.array([True, True]), id="bool"),
        pytest.param([1.0, np.nan], id="nan"),
        pytest.param([1.0, np.inf], id="inf"),
        pytest.param([1.0, 0.0], id="zero"),
        pytest.param([1.0, -2.0], id="negative"),
        pytest.param([1.0], id="short"),
        pytest.param(np.ones((2, 1)), id="2d"),
        pytest.param(1.0, id="scalar"),
        pytest.param([[1.0], [1.0, 2.0]], id="ragged"),
    ],
)
def test_bad_weights_are_refused(weights: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="weights") as info:
        TrainSet(keys=[1, 2], weights=weights, version=1)
    assert info.value.name == "weights"


@pytest.mark.parametrize("epoch", [1.5, 1.0, True, None, "0", -1])
@pytest.mark.parametrize("plans", [None, (np.array([0]), np.array([1]))], ids=["all", "plans"])
def test_bad_epoch_is_refused(epoch: Any, plans: Any) -> None:
    ts = TrainSet(keys=[1, 2], weights=np.ones(2), version=1, per_epoch=plans)
    with pytest.raises(InvalidArgumentError, match="epoch") as info:
        ts.for_epoch(epoch)
    assert info.value.name == "epoch"


@pytest.mark.parametrize(
    "keys",
    [
        [5, 3, 9],
        np.array([5, 3, 9], dtype=np.int8),
        np.array([5, 3, 9], dtype=np.int32),
        np.array([5, 3, 9], dtype=np.uint16),
        np.array([5, 3, 9], dtype=np.uint64),
        np.array([0, 5, 3, 9, 1])[1:4],
        np.array([9, 3, 5])[::-1],
        pa.array([5, 3, 9], pa.int64()),
        pa.chunked_array([[5], [3, 9]], pa.int32()),
    ],
)
def test_valid_integer_keys_still_work(keys: Any) -> None:
    ts = TrainSet(keys=keys, weights=[1, 2.5, 3], version=np.int64(2))
    assert ts.keys.dtype == np.int64 and ts.keys.flags.c_contiguous
    assert ts.keys.tolist() == [5, 3, 9]
    assert ts.weights.dtype == np.float64 and ts.weights.tolist() == [1.0, 2.5, 3.0]
    assert ts.version == 2 and type(ts.version) is int
    assert ts.for_epoch(np.int64(1)).tolist() == [0, 1, 2]
    assert TrainSet.uniform(keys, version=2).keys.tolist() == [5, 3, 9]


def test_empty_and_extreme_keys_still_work() -> None:
    assert TrainSet(keys=[], weights=[], version=0).size == 0
    assert TrainSet.uniform(np.empty(0, dtype=np.int64), version=0).size == 0
    big = np.array([2**63 - 1, -(2**63)], dtype=np.int64)
    assert TrainSet.uniform(big, version=0).keys.tolist() == big.tolist()
    assert TrainSet.uniform(np.array([2**63 - 1], dtype=np.uint64), version=0).keys.tolist() == [2**63 - 1]


# -- record_training -----------------------------------------------------------------------
def _files(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(str(tmp_path / "s"), create=True)
    s.append(pa.table({"ts": [1, 2, 3]}))
    return s


def _assert_unchanged(store: Store, root: Path, version: int, files: set[str]) -> None:
    assert store.version == version
    assert _files(root) == files
    assert Catalog(store).store.read_table("trainings") is None


@pytest.mark.parametrize("data_version", [2, 999])
def test_record_training_refuses_future_version(store: Store, tmp_path: Path, data_version: int) -> None:
    root = tmp_path / "s"
    before, files = store.version, _files(root)
    assert before == 1
    with pytest.raises(UnknownVersionError, match=r"train_set\.version"):
        Catalog(store).record_training("t1", TrainSet.uniform([0, 2], version=data_version))
    _assert_unchanged(store, root, before, files)


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param("x", id="str"),
        pytest.param("7", id="digit-str"),
        pytest.param(1.7, id="float"),
        pytest.param(1.0, id="integral-float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param(2**63, id="above-int64"),
    ],
)
def test_record_training_refuses_bad_seed(store: Store, tmp_path: Path, seed: Any) -> None:
    root = tmp_path / "s"
    before, files = store.version, _files(root)
    with pytest.raises(InvalidArgumentError, match="seed") as info:
        Catalog(store).record_training("t1", TrainSet.uniform([0, 2], version=1), seed=seed)
    assert info.value.name == "seed"
    _assert_unchanged(store, root, before, files)


@pytest.mark.parametrize("data_version", [0, 1, np.int64(1)])
@pytest.mark.parametrize("seed", [0, 7, -3, np.int32(11)])
def test_record_training_accepts_valid_version_and_seed(store: Store, data_version: Any, seed: Any) -> None:
    cat = Catalog(store)
    rec = cat.record_training("t1", TrainSet.uniform([2, 0], version=data_version), seed=seed)
    assert rec.data_version == int(data_version) and rec.seed == int(seed)
    assert store.version == 2
    assert cat.train_set("t1").keys.tolist() == [2, 0]


@pytest.mark.parametrize("plan", [np.array([0.5]), [True], np.array([[0]]), ["0"]], ids=["float", "bool", "2d", "str"])
def test_bad_epoch_plan_is_refused_not_truncated(plan: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        TrainSet(keys=np.array([1, 2]), weights=np.ones(2), version=1, per_epoch=(np.array([0, 1]), plan))
    assert info.value.name == "per_epoch[1]"


@pytest.mark.parametrize("cutoff", [(True, 0), (1, False), (1.0, 0), (1,)], ids=["bool-version", "bool-position", "float", "short"])
def test_record_training_refuses_bad_cutoff(store: Store, tmp_path: Path, cutoff: Any) -> None:
    root = tmp_path / "s"
    before, files = store.version, _files(root)
    with pytest.raises(InvalidArgumentError, match="cutoff"):
        Catalog(store).record_training("t1", TrainSet.uniform([0, 2], version=1), cutoff=cutoff)
    _assert_unchanged(store, root, before, files)


def _two_epochs(w1: Any = (1.0, 3.0)) -> TrainSet:
    return TrainSet(keys=np.array([0, 1, 2]), weights=np.array([1.0, 3.0, 4.0]), version=1,
                    per_epoch=(np.array([0, 1]), np.array([2, 1])), per_epoch_weights=((1.0, 2.0), w1))


@pytest.mark.parametrize("plans, weights, what", [
    (None, ((1.0,),), "one array per epoch plan"),
    ((np.array([0, 1]),), ((1.0, 2.0), (1.0,)), "one array per epoch plan"),
    ((np.array([0, 1]),), ((1.0,),), "aligned with keys"),
    ((np.array([0, 1]),), ((1.0, 0.0),), "finite weights > 0"),
    ((np.array([0, 1]),), ((1.0, np.nan),), "finite weights > 0"),
])
def test_bad_epoch_weights_are_refused(plans: Any, weights: Any, what: str) -> None:
    with pytest.raises(InvalidArgumentError, match=what):
        TrainSet(keys=np.array([0, 1]), weights=np.ones(2), version=1, per_epoch=plans, per_epoch_weights=weights)


def test_epoch_weights_are_each_epochs_own_and_part_of_the_digest() -> None:
    ts = _two_epochs()
    second = ts.epoch_set(1)
    assert second.keys.tolist() == [2, 1]
    assert ts.epoch_set(1).weights.tolist() == [1.0, 3.0] and ts.epoch_set(2).weights.tolist() == [1.0, 2.0]
    assert ts.epoch_set(0).per_epoch is None
    assert ts.digest() != _two_epochs((1.0, 4.0)).digest()
    plain = TrainSet(keys=ts.keys, weights=ts.weights, version=1, per_epoch=ts.per_epoch)
    assert ts.digest() != plain.digest() and plain.epoch_set(1).weights.tolist() == [4.0, 3.0]


def test_epoch_weights_round_trip_the_catalog_and_a_loader_refuses_them(store: Store) -> None:
    ts = _two_epochs()
    cat = Catalog(store)
    cat.record_training("t1", ts, seed=0)
    back = cat.train_set("t1")
    assert back == ts and back.per_epoch_weights is not None
    assert [w.tolist() for w in back.per_epoch_weights] == [[1.0, 2.0], [1.0, 3.0]]
    from training.loading import loader

    with pytest.raises(InvalidArgumentError, match="epoch_set") as err:
        loader(store, back, columns=["ts"], batch_size=2)
    assert err.value.name == "train_set"
    assert sorted(next(iter(loader(store, back.epoch_set(1), columns=["ts"], batch_size=2)))["weight"].tolist()) \
        == [1.0, 3.0]


def test_every_array_of_a_set_is_read_only() -> None:
    """Plans stayed writable: a plan changed after the set's checks gave positions out of range
    and another digest than the one recorded."""
    plan, plan_w = np.array([0, 1, 2]), np.full(3, 2.0)
    ts = TrainSet(keys=np.arange(5), weights=np.ones(5), version=1, per_epoch=(plan,), per_epoch_weights=(plan_w,))
    assert ts.per_epoch is not None and ts.per_epoch_weights is not None
    for arr in (ts.keys, ts.weights, ts.per_epoch[0], ts.per_epoch_weights[0]):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 4


@pytest.mark.parametrize("plans", [np.array([0, 1, 2]), [0, 1, 2]], ids=["array", "list"])
def test_a_flat_array_of_positions_is_not_one_plan_per_epoch(plans: Any) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        TrainSet(keys=np.arange(3), weights=np.ones(3), version=1, per_epoch=plans)
    assert info.value.name == "per_epoch[0]"
    assert TrainSet(keys=np.arange(3), weights=np.ones(3), version=1, per_epoch=(plans,)).for_epoch(5).tolist() == [0, 1, 2]
