"""Ray reads of a snapshot: bad filters refused up front, an empty store read as no rows,
jobs that maintenance overtakes between planning and reading run again on the new files, and a
Dataset so overtaken raises the store's error, never erased rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

from modyn_store import ConflictError, DataUnavailableError, InvalidArgumentError, InvalidFilterError, Store
from modyn_store.app.pipeline.ray_exec import score_on_ray, select_on_ray
from modyn_store.core.snapshot import Snapshot
from policies import ClassBalanced, Loss, Uniform
from policies.base import SelectionContext
from training.scoring import score

ray = pytest.importorskip("ray")

from tests.pipeline.ray_marks import RAY_MARKS, ray_session  # noqa: E402,F401 (the module's Ray session)

pytestmark = RAY_MARKS


def _store(path: Path) -> Store:
    rng = np.random.default_rng(7)
    st = Store.open(str(path), create=True)
    for i in range(4):
        n = 120
        x = rng.standard_normal((n, 4)).astype(np.float32)
        st.append(pa.table({"ts": np.arange(i * n, (i + 1) * n), "label": np.arange(n) % 3,
                            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 4)}))
    st.delete(keys=np.arange(0, 480, 11))
    return st


def _compact_after_first_plan(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[int]:
    """Make the first ``Snapshot.to_ray`` plan on the current files and then compact the store,
    as another process may between a Ray job's planning and its reads."""
    original = Snapshot.to_ray
    calls: list[int] = []

    def planned_then_compacted(self: Snapshot, *args: Any, **kwargs: Any) -> Any:
        ds = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            store.compact()
        return ds

    monkeypatch.setattr(Snapshot, "to_ray", planned_then_compacted)
    return calls


def test_a_bad_filter_is_refused_before_any_ray_task(tmp_path: Path) -> None:
    st = _store(tmp_path / "s")
    for bad in ("nosuch = 1", "label = 'a'"):
        with pytest.raises(InvalidFilterError, match="filter"):
            st.as_of().to_ray(["ts"], bad)
    keys = np.sort(st.as_of().to_ray(["ts"], "ts >= 200").to_pandas()["key"].to_numpy())
    assert np.array_equal(keys, st.as_of().to_table(["key"], "ts >= 200").column("key").to_numpy())


def test_an_empty_store_reads_as_no_rows(tmp_path: Path) -> None:
    st = Store.open(str(tmp_path / "empty"), create=True)
    assert st.as_of().to_ray(["ts"]).count() == 0


def test_scoring_overtaken_by_a_compaction_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = _store(tmp_path / "s")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    single = score(st, model, inputs={"input": "x"}, scores=("loss",), write=False)
    calls = _compact_after_first_plan(monkeypatch, st)
    dist = score_on_ray(st, model, inputs={"input": "x"}, scores=("loss",), write=False)
    assert len(calls) >= 2  # planned again on the compacted files
    assert np.array_equal(dist.keys, single.keys)
    # the compaction regroups the rows into other blocks, and torch rounds a row's float32 matmul
    # differently in a batch of 1-7 rows than in a larger one: equal to the last bits, not bit for bit
    np.testing.assert_allclose(dist.values["loss"], single.values["loss"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("strategy", [Uniform(ratio=0.3), ClassBalanced(ratio=0.3)], ids=["uniform", "class"])
def test_selection_overtaken_by_a_compaction_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: Any
) -> None:
    st = _store(tmp_path / "s")
    snap = st.as_of()
    want = strategy.select(SelectionContext(snapshot=snap, seed=4)).keys
    _compact_after_first_plan(monkeypatch, st)
    got = select_on_ray(strategy, snap, seed=4).keys
    assert np.array_equal(got, want)


@pytest.mark.parametrize(
    "values",
    [np.full(300, 1e307), np.where(np.arange(300) < 5, 1e300, 1e-300)],
    ids=["total-beyond-float64", "importance-beyond-float64"],
)
def test_importance_sampling_of_extreme_scores_equals_one_process(tmp_path: Path, values: np.ndarray) -> None:
    st = Store.open(str(tmp_path / "s"), create=True)
    st.append(pa.table({"ts": np.arange(300)}))
    snap = st.as_of()
    scores = {"loss": (snap.keys(), values)}
    strategy = Loss(ratio=0.5, method="importance")
    try:
        want: Any = strategy.select(SelectionContext(snapshot=snap, seed=2, computed_scores=scores))
    except InvalidArgumentError as exc:
        want = exc
    if isinstance(want, InvalidArgumentError):
        with pytest.raises(InvalidArgumentError) as info:
            select_on_ray(strategy, snap, seed=2, scores=scores)
        assert str(info.value) == str(want)
    else:
        got = select_on_ray(strategy, snap, seed=2, scores=scores)
        assert np.array_equal(got.keys, want.keys) and np.array_equal(got.weights, want.weights)


def test_importance_sampling_with_zero_scores_draws_the_same_share_as_one_process(tmp_path: Path) -> None:
    st = Store.open(str(tmp_path / "s"), create=True)
    st.append(pa.table({"ts": np.arange(200)}))
    snap = st.as_of()
    loss = np.where(np.arange(200) % 2 == 0, 0.0, np.linspace(0.1, 2.0, 200))  # half never drawn
    scores = {"loss": (snap.keys(), loss)}
    strategy = Loss(ratio=0.3, method="importance")  # 60 rows: a share of every scored row
    want = strategy.select(SelectionContext(snapshot=snap, seed=3, computed_scores=scores))
    got = select_on_ray(strategy, snap, seed=3, scores=scores)
    assert want.keys.size == 60
    assert np.array_equal(got.keys, want.keys) and np.array_equal(got.weights, want.weights)


def test_class_quotas_over_a_nullable_integer_label_equal_one_process(tmp_path: Path) -> None:
    st = Store.open(str(tmp_path / "s"), create=True)
    labels = [None if i % 7 == 0 else i % 4 for i in range(120)]  # some blocks hold a null, some not
    for part in range(3):
        st.append(pa.table({"ts": np.arange(part * 40, part * 40 + 40),
                            "label": pa.array(labels[part * 40:part * 40 + 40], pa.int64())}))
    snap = st.as_of()
    strategy = ClassBalanced(limit=25)
    want = strategy.select(SelectionContext(snapshot=snap, seed=5)).keys
    got = select_on_ray(strategy, snap, seed=5).keys
    assert np.array_equal(got, want)


def test_an_error_inside_a_ray_task_reaches_the_caller_as_the_store_error(tmp_path: Path) -> None:
    """A typed error raised inside a Ray task (a ``map_batches`` step or a plain task) arrives as
    the store's own error, caught as on the single-process path, with the same message."""
    st = Store.open(str(tmp_path / "s"), create=True)
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    rows = [None if i == 3 else list(map(float, x[i])) for i in range(10)]  # one input without a value
    st.append(pa.table({"ts": np.arange(10), "label": np.arange(10) % 2,
                        "x": pa.array(rows, pa.list_(pa.float32(), 4))}))
    model = torch.nn.Linear(4, 2)
    with pytest.raises(InvalidArgumentError) as single:
        score(st, model, inputs={"input": "x"}, scores=("loss",), write=False)
    with pytest.raises(InvalidArgumentError) as on_ray:
        score_on_ray(st, model, inputs={"input": "x"}, scores=("loss",), write=False)
    assert type(on_ray.value) is type(single.value) and str(on_ray.value) == str(single.value)
    assert not ray.data.DataContext.get_current().raise_original_map_exception, "the user's context is left as it was"
    # a plain Ray task of a store job (the class quotas run such tasks): the error itself
    from modyn_store.app.pipeline.ray_exec import _reading
    from training.errors import ErasedKeysError

    @ray.remote
    def refuse() -> None:
        raise ErasedKeysError("train set at version 1", np.array([4, 2]))

    with pytest.raises(ErasedKeysError) as erased:
        _reading(st, lambda: ray.get(refuse.remote()))
    assert type(erased.value) is ErasedKeysError and erased.value.keys.tolist() == [2, 4]
    # an engine kernel's refusal: the store's InvalidArgumentError, as engine_errors() gives in one process
    from engine.errors import EngineInputError

    @ray.remote
    def kernel_refuses() -> None:
        raise EngineInputError("k", -1, "an integer >= 0")

    with pytest.raises(InvalidArgumentError, match=r"invalid k=-1: expected an integer >= 0") as kernel:
        _reading(st, lambda: ray.get(kernel_refuses.remote()))
    assert type(kernel.value) is InvalidArgumentError


@pytest.mark.parametrize("limit", [None, 4])
@pytest.mark.parametrize("kind", ["int64-nullable", "uint64"])
def test_class_quotas_over_large_integer_labels_equal_one_process(tmp_path: Path, limit: int | None,
                                                                   kind: str) -> None:
    """Integer labels beyond 2**53 next to a missing one, and uint64 labels beyond int64, are
    distinct classes in their own order, compared exactly (float64 would merge them, int64 would
    wrap them): the Ray path selects what one process selects."""
    st = Store.open(str(tmp_path / "s"), create=True)
    for part in range(3):
        rows = range(part * 12, part * 12 + 12)
        if kind == "uint64":  # labels on both sides of 2**63 (int64 would put the large ones first)
            labels = pa.array([(2**63 + i % 3) if i % 2 else i % 4 for i in rows], pa.uint64())
        else:
            labels = pa.array([None if i % 5 == 0 else 2**60 + (i % 3) for i in rows], pa.int64())
        st.append(pa.table({"ts": np.arange(part * 12, part * 12 + 12), "label": labels}))
    strategy = ClassBalanced(ratio=0.5) if limit is None else ClassBalanced(limit=limit)
    for seed in (0, 3):
        want = strategy.select(SelectionContext(snapshot=st.as_of(), seed=seed)).keys
        assert np.array_equal(select_on_ray(strategy, st.as_of(), seed=seed).keys, want)


def _three_appends(path: Path) -> Store:
    st = Store.open(str(path), create=True)
    for i in range(3):  # three fragments of 50 rows: keys 0-49, 50-99, 100-149
        st.append(pa.table({"ts": np.arange(i * 50, i * 50 + 50), "label": np.arange(50) % 3}))
    return st


def _consumed(ds: Any) -> tuple[np.ndarray, BaseException | None]:
    """The keys of the blocks ``ds`` yields, and the error that stopped it (or None)."""
    got: list[np.ndarray] = []
    try:
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            got.append(np.asarray(batch["key"]))
    except Exception as exc:  # the test looks at what it is
        return np.concatenate(got) if got else np.empty(0, np.int64), exc
    return np.concatenate(got) if got else np.empty(0, np.int64), None


@pytest.mark.parametrize("after", ["nothing", "compact", "vacuum"])
def test_a_ray_dataset_overtaken_by_an_erase_raises_a_conflict_and_returns_no_erased_row(
    tmp_path: Path, after: str
) -> None:
    """An erase (then a compaction or vacuum) between ``to_ray`` and the Dataset's reads removes
    the files it was planned on: the reads raise the store's ConflictError naming the version
    and the erased keys, never Lance's error, and no erased row comes out; a new ``to_ray``
    reads what ``to_table`` reads."""
    st = _three_appends(tmp_path / "s")
    snap = st.as_of()
    ds = snap.to_ray(["ts"])
    st.erase([3, 60, 120], reason="request")
    if after == "compact":
        st.compact()
    elif after == "vacuum":
        st.vacuum(keep_versions=1, dry_run=False)
    keys, exc = _consumed(ds)
    assert isinstance(exc, ConflictError), repr(exc)
    assert f"version {snap.version} of {st.uri!r}" in str(exc)
    assert "3 keys were erased since (e.g. [3, 60, 120])" in str(exc)
    assert not np.isin(keys, [3, 60, 120]).any()
    again = np.sort(snap.to_ray(["ts"]).to_pandas()["key"].to_numpy())
    assert np.array_equal(again, snap.to_table(["key"]).column("key").to_numpy())
    assert again.size == 147


def test_a_ray_dataset_whose_rows_a_vacuum_purges_raises_what_to_table_raises(tmp_path: Path) -> None:
    """A vacuum that purges rows of the Dataset's version before it reads them: the reads raise
    ``DataUnavailableError`` naming the keys, with ``to_table``'s message; with
    ``on_unavailable="skip"`` a ConflictError ("read again"), and a new ``to_ray`` skips them."""
    st = _three_appends(tmp_path / "s")
    snap = st.as_of()
    ds, skipping = snap.to_ray(["ts"]), snap.to_ray(["ts"], on_unavailable="skip")
    st.delete(keys=[3, 4])
    st.vacuum(keep_versions=1, dry_run=False)
    with pytest.raises(DataUnavailableError) as single:
        snap.to_table(["ts"])
    keys, exc = _consumed(ds)
    assert isinstance(exc, DataUnavailableError), repr(exc)
    assert exc.keys.tolist() == [3, 4] and str(single.value) in str(exc)
    assert not np.isin(keys, [3, 4]).any()
    keys, exc = _consumed(skipping)
    assert isinstance(exc, ConflictError) and "call Snapshot.to_ray again" in str(exc), repr(exc)
    again = np.sort(snap.to_ray(["ts"], on_unavailable="skip").to_pandas()["key"].to_numpy())
    assert np.array_equal(again, snap.to_table(["key"], on_unavailable="skip").column("key").to_numpy())
    assert again.size == 148


def test_scoring_overtaken_by_an_erase_equals_one_process_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``score_on_ray`` planned before an erase plans again on the new files (the reads' ConflictError
    is its cue) and scores what one process scores after the erase."""
    st = _store(tmp_path / "s")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    original = Snapshot.to_ray
    calls: list[int] = []

    def planned_then_erased(self: Snapshot, *args: Any, **kwargs: Any) -> Any:
        ds = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            st.erase([1, 200, 470], reason="request")
        return ds

    monkeypatch.setattr(Snapshot, "to_ray", planned_then_erased)
    dist = score_on_ray(st, model, inputs={"input": "x"}, scores=("loss",), write=False)
    monkeypatch.undo()
    single = score(st, model, inputs={"input": "x"}, scores=("loss",), write=False)
    assert len(calls) >= 2
    assert not np.isin(dist.keys, [1, 200, 470]).any()
    assert np.array_equal(dist.keys, single.keys)
    np.testing.assert_allclose(dist.values["loss"], single.values["loss"], rtol=1e-6, atol=0)
