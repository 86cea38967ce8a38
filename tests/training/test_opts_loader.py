"""The loader runs transforms in worker processes when asked, prepares batches ahead in a thread
of its own with ``LoaderOptions.prefetch``, and its read strategy and thread count are the ones
LoaderOptions names."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import pytest
import torch

from modyn_store.core.trainset import TrainSet
from training.entries import LoaderOptions
from training.loading import loader


def with_pid(batch: dict) -> dict:
    """The id of the process that ran the transform, one per row."""
    return {**batch, "pid": torch.full((len(batch["key"]),), os.getpid(), dtype=torch.int64)}


def test_num_workers_runs_the_transform_in_other_processes(store: Any) -> None:
    ts = TrainSet.uniform(np.sort(store.as_of(None).keys()[:90]), version=store.version)
    here = loader(store, ts, columns=["label"], batch_size=30, transform=with_pid)
    assert {int(p) for b in here for p in b["pid"]} == {os.getpid()}
    there = loader(store, ts, columns=["label"], batch_size=30, transform=with_pid, num_workers=2)
    pids = {int(p) for b in there for p in b["pid"]}
    assert pids and os.getpid() not in pids


def test_num_workers_refuses_a_transform_workers_cannot_receive(store: Any) -> None:
    # refused by loader() itself, naming the transform, rather than by pickle's own error when
    # the first epoch starts the workers
    from modyn_store.core.errors import InvalidArgumentError

    ts = TrainSet.uniform(np.sort(store.as_of(None).keys()[:30]), version=store.version)
    def local(batch: dict) -> dict:
        return batch

    for transform in (lambda b: b, local):
        with pytest.raises(InvalidArgumentError, match="transform"):
            loader(store, ts, columns=["label"], batch_size=10, transform=transform, num_workers=2)  # type: ignore[arg-type]
    here = loader(store, ts, columns=["label"], batch_size=10, transform=lambda b: b)
    assert sum(len(b["key"]) for b in here) == 30


@pytest.mark.parametrize("strategy, threads", [("scan", 1), ("take", 3)])
def test_strategy_and_threads_reach_the_read(store: Any, monkeypatch: pytest.MonkeyPatch, strategy: str,
                                             threads: int) -> None:
    import training.entries as entries

    seen: list[tuple[Any, Any, Any]] = []
    real_plan = entries.plan

    def plan(*args: Any, **kwargs: Any) -> Any:
        layout = real_plan(*args, **kwargs)
        seen.append((kwargs.get("strategy"), kwargs.get("threads"), getattr(layout, "strategy", None)))
        return layout

    monkeypatch.setattr(entries, "plan", plan)
    keys = np.sort(store.as_of(None).keys()[::3])
    dl = loader(store, TrainSet.uniform(keys, version=store.version), columns=["x"], batch_size=100,
                options=LoaderOptions(strategy=strategy, threads=threads))  # type: ignore[arg-type]
    assert sorted(np.concatenate([b["key"].numpy() for b in dl]).tolist()) == keys.tolist()
    assert seen and seen[0][:2] == (strategy, threads)
    if seen[0][2] is not None:
        assert seen[0][2] == strategy


@pytest.mark.parametrize("prefetch", [0, 2])
def test_prefetch_prepares_the_batches_in_a_thread_of_its_own(store: Any, prefetch: int) -> None:
    # the transform runs where the batches are prepared: in the iterating thread, or with
    # prefetch > 0 in the loader's background thread, both in the epoch that builds the cache
    # entry and in the epochs served from it
    ts = TrainSet.uniform(np.sort(store.as_of(None).keys()[:90]), version=store.version)
    seen: list[str] = []

    def where(batch: dict) -> dict:
        seen.append(threading.current_thread().name)
        return batch

    dl = loader(store, ts, columns=["label"], batch_size=30, transform=where,
                options=LoaderOptions(prefetch=prefetch))
    for epoch in range(2):
        assert sum(len(b["key"]) for b in dl) == 90
        names = set(seen[3 * epoch:])
        assert len(seen) == 3 * (epoch + 1)
        assert names == ({threading.current_thread().name} if prefetch == 0 else {"modyn-store-loader"}), epoch
