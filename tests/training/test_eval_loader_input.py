"""Bad inputs of ``LoaderOptions``, ``evaluate`` and ``time_slices``: typed errors naming the
argument, raised before any work (no read, no write to the store)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch

import training.evaluation as evaluation
from modyn_store import Store
from modyn_store.core.errors import InvalidArgumentError
from training.entries import LoaderOptions
from training.evaluation import Slice, evaluate, time_slices

N = 40


@pytest.fixture(scope="module")
def store() -> Store:
    s = Store.open("memory://eval-loader-input", create=True)
    x = np.random.default_rng(0).standard_normal((N, 2)).astype(np.float32)
    s.append(pa.table({
        "ts": np.arange(N),
        "label": (x[:, 0] > 0).astype(np.int64),
        "neg": np.full(N, -1, np.int64),  # a negative class code
        "big": np.arange(N, dtype=np.int64),  # codes past the model's 2 classes
        "flt": (x[:, 0] > 0).astype(np.float64),  # not class codes
        "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2),
    }))
    return s


# -- LoaderOptions ----------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("strategy", "bogus"), ("strategy", None),
    ("threads", 0), ("threads", -1), ("threads", "2"), ("threads", 1.5), ("threads", True),
    ("max_cache_bytes", -1), ("max_cache_bytes", None), ("max_cache_bytes", "1"), ("max_cache_bytes", 1.0),
    ("device_memory_budget", -1), ("device_memory_budget", "0"), ("device_memory_budget", 0.5),
    ("prefetch", "2"), ("prefetch", -3), ("prefetch", 1.5), ("prefetch", None), ("prefetch", True),
    ("pin_memory", "yes"), ("pin_memory", 1), ("pin_memory", 0),
    ("host_memory_budget", -1), ("host_memory_budget", "1"), ("host_memory_budget", 2.5),
])
def test_loader_options_refuse_bad_fields_when_built(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(f"LoaderOptions.{field}=")) as exc:
        LoaderOptions(**{field: value})
    assert "expected" in str(exc.value)
    with pytest.raises(InvalidArgumentError, match=re.escape(f"LoaderOptions.{field}=")):
        dataclasses.replace(LoaderOptions(), **{field: value})


def test_loader_options_keep_valid_values() -> None:
    assert LoaderOptions() == LoaderOptions(strategy="auto", prefetch=0)
    for strategy in ("auto", "scan", "take"):
        assert LoaderOptions(strategy=strategy).strategy == strategy  # type: ignore[arg-type]
    opts = LoaderOptions(threads=np.int64(2), max_cache_bytes=0, device_memory_budget=0, prefetch=np.int32(2),
                         pin_memory=False, host_memory_budget=0)
    assert (opts.threads, opts.max_cache_bytes, opts.device_memory_budget, opts.prefetch, opts.host_memory_budget) \
        == (2, 0, 0, 2, 0)
    assert type(opts.threads) is int and type(opts.prefetch) is int
    assert LoaderOptions(pin_memory=True, threads=None, device_memory_budget=None).pin_memory is True


# -- evaluate ---------------------------------------------------------------------------------

def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 2)


BEFORE_WORK = [  # (name, evaluate kwargs, argument named): refused before any read
    ("device-bogus", {"device": "bogus"}, "device"),
    ("device-int-list", {"device": [0]}, "device"),
    ("models-empty-dict", {"models": {}}, "models"),
    ("models-empty-list", {"models": []}, "models"),
    ("models-str", {"models": "m"}, "models"),
    ("models-not-module", {"models": {"m": lambda x: x}}, "models"),
    ("slices-empty", {"slices": []}, "slices"),
    ("slices-tuple-item", {"slices": [(0, 1)]}, "slices"),
    ("slices-one-bad-item", {"slices": "mixed"}, "slices"),
    ("slices-not-a-list", {"slices": 3}, "slices"),
    ("label-float-column", {"label": "flt"}, "label"),
]


@pytest.mark.parametrize(("kwargs", "name"), [(k, n) for _, k, n in BEFORE_WORK],
                         ids=[i for i, _, _ in BEFORE_WORK])
def test_evaluate_refuses_bad_arguments_before_any_work(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                        kwargs: dict[str, Any], name: str) -> None:
    slices = time_slices(store, n=2)
    kw: dict[str, Any] = {"models": {"lin": _model()}, "slices": slices, "inputs": {"input": "x"}, **kwargs}
    if kw["slices"] == "mixed":
        kw["slices"] = [slices[0], "slice-0001"]
    reads: list[Any] = []
    real = evaluation.slice_keys
    monkeypatch.setattr(evaluation, "slice_keys", lambda *a, **k: reads.append(a) or real(*a, **k))
    v0 = store.version
    with pytest.raises(InvalidArgumentError, match=re.escape(f"invalid {name}=")):
        evaluate(store, kw.pop("models"), kw.pop("slices"), **kw)
    assert store.version == v0
    assert reads == []  # refused before the slices were read


@pytest.mark.parametrize("label", ["big", "neg"])
def test_evaluate_refuses_label_codes_outside_the_model_classes(store: Store, label: str) -> None:
    v0 = store.version
    with pytest.raises(InvalidArgumentError, match=r"invalid label=.*class codes 0 \.\. 1"):
        evaluate(store, {"lin": _model()}, time_slices(store, n=2), inputs={"input": "x"}, label=label)
    assert store.version == v0  # nothing recorded
    # codes in range are evaluated and recorded as before
    m = evaluate(store, {"lin": _model()}, (Slice("all", 0, N, closed=True),), inputs={"input": "x"},
                 loader_options=LoaderOptions(prefetch=1))
    assert m.counts == (N,) and m.evaluation_id is not None and store.version == v0 + 1


# -- time_slices ------------------------------------------------------------------------------

@pytest.mark.parametrize("every", [float("nan"), float("inf"), np.float64("inf"), True],
                         ids=["nan", "inf", "np-inf", "True"])
def test_time_slices_refuse_bad_widths(store: Store, every: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape("invalid every=")):
        time_slices(store, every=every)


def test_time_slices_check_before_the_scan(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(*a: Any, **k: Any) -> Any:
        raise AssertionError("scanned before checking the arguments")

    monkeypatch.setattr(store, "as_of", no_scan)
    for kwargs in ({"every": float("nan")}, {"n": 0}):
        with pytest.raises(InvalidArgumentError):
            time_slices(store, **kwargs)


def test_loader_columns_given_as_one_string_are_refused(store: Store) -> None:
    """``columns="label"`` was split into the columns 'l', 'a', 'b', 'e', 'l'."""
    from modyn_store.core.trainset import TrainSet
    from training.loading import loader

    with pytest.raises(InvalidArgumentError, match="invalid columns='label'"):
        loader(store, TrainSet.uniform(np.arange(4), version=1), columns="label", batch_size=2)  # type: ignore[arg-type]


# -- Slice ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, arg", [
    ({"start": 10.0, "end": 5.0}, "end"),  # ends before it starts: would evaluate 0 rows
    ({"start": float("nan"), "end": 5.0}, "start"),
    ({"start": 0.0, "end": float("nan")}, "end"),
    ({"start": "0", "end": 5.0}, "start"),
    ({"start": True, "end": 5.0}, "start"),
    ({"name": "", "start": 0.0, "end": 5.0}, "name"),
    ({"start": 0.0, "end": 5.0, "closed": 1}, "closed"),
], ids=["end-before-start", "nan-start", "nan-end", "str-start", "bool-start", "empty-name", "int-closed"])
def test_slice_refuses_bad_windows(kwargs: dict[str, Any], arg: str) -> None:
    kwargs = {"name": "s", **kwargs}
    with pytest.raises(InvalidArgumentError, match=re.escape(f"invalid {arg}=")):
        Slice(**kwargs)


def test_slice_accepts_one_point_and_open_sides(store: Store) -> None:
    point = Slice("point", 7, 7, closed=True)  # what time_slices makes of one distinct ts
    before, after = Slice("before", -float("inf"), 7), Slice("after", 8, float("inf"))
    m = evaluate(store, {"lin": torch.nn.Linear(2, 2)}, [point, before, after], inputs={"input": "x"},
                 record=False)
    assert m.counts == (1, 7, N - 8)


@pytest.mark.parametrize("slices", [
    [Slice("all", 0, N), Slice("late", 30, N)],  # nested: "all" would lose the late rows
    [Slice("a", 0, 20, closed=True), Slice("b", 20, N)],  # share ts == 20
    [Slice("a", 0, N), Slice("empty", 5, 5), Slice("c", 10, 12)],  # an empty one between
    [Slice("p", 7, 7, closed=True), Slice("a", 0, N)],
], ids=["nested", "closed-edge", "past-empty", "point-inside"])
def test_overlapping_slices_are_refused(store: Store, slices: list[Slice]) -> None:
    with pytest.raises(InvalidArgumentError, match="do not overlap"):
        evaluate(store, {"lin": torch.nn.Linear(2, 2)}, slices, inputs={"input": "x"}, record=False)


def test_slices_need_distinct_names(store: Store) -> None:
    with pytest.raises(InvalidArgumentError, match="distinct names"):
        evaluate(store, {"lin": torch.nn.Linear(2, 2)}, [Slice("a", 0, 10), Slice("a", 10, 20)],
                 inputs={"input": "x"}, record=False)


def test_adjacent_slices_partition_the_rows(store: Store) -> None:
    slices = [Slice("b", 20, N, closed=True), Slice("a", 0, 20), Slice("empty", 20, 20)]
    m = evaluate(store, {"lin": torch.nn.Linear(2, 2)}, slices, inputs={"input": "x"}, record=False)
    assert m.counts == (N - 20, 20, 0)
