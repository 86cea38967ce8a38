"""Device batches gathered in runs of several batches (training.transfer), checked on the CPU:
the same batches as the host path, each a slice of its own run's rows only."""

from __future__ import annotations

import pytest
import torch

from tests.training.test_loader import _as_lists, _selection
from training import transfer
from training.loading import loader


def test_runs_group_consecutive_batches_by_bytes() -> None:
    bounds = [(0, 10), (10, 20), (20, 30), (30, 35)]
    assert transfer.runs(bounds, row_bytes=transfer.RUN_BYTES // 25) == [[(0, 10), (10, 20)], [(20, 30), (30, 35)]]
    assert transfer.runs(bounds, row_bytes=transfer.RUN_BYTES) == [[b] for b in bounds]
    assert transfer.runs([], row_bytes=8) == []


@pytest.mark.parametrize("run_bytes", [1, 2500, None])
def test_streamed_and_resident_runs_serve_the_host_batches(store, run_bytes, monkeypatch) -> None:
    """1 byte: one batch per run; 2500: a few batches per run and a shorter last run; None: one run."""
    if run_bytes is not None:
        monkeypatch.setattr(transfer, "RUN_BYTES", run_bytes)
    ts = _selection(store, 230, seed=21)
    columns = ["x", "label", "text"]
    ref = [_as_lists(b) for b in loader(store, ts, columns=columns, batch_size=16, seed=4)]
    dl = loader(store, ts, columns=columns, batch_size=16, seed=4)
    dl.wait_materialized()
    order = dl._pos2row[dl.order(0)]
    streamed = [_as_lists(b) for b in dl._batches_streamed(order)]
    dev = {"__key__": dl._keys, "__weight__": dl._weights, **dl._host}
    resident = [_as_lists(b) for b in transfer.resident_batches(
        dev, order, dl._bounds(order.size), columns, device=torch.device("cpu"), var_rows=dl._var_rows)]
    assert streamed == ref
    assert resident == ref


def test_changing_a_batch_in_place_changes_no_other_batch_and_not_the_source(store, monkeypatch) -> None:
    monkeypatch.setattr(transfer, "RUN_BYTES", 1 << 20)  # every batch of the epoch in one run
    ts = _selection(store, 100, seed=21)
    dl = loader(store, ts, columns=["x"], batch_size=10, seed=2)
    dl.wait_materialized()
    order = dl._pos2row[dl.order(0)]
    before = {n: t.clone() for n, t in dl._host.items()}
    batches = list(dl._batches_streamed(order))
    want = [b["x"].clone() for b in batches]
    batches[0]["x"].fill_(-7.0)
    for b, w in zip(batches[1:], want[1:]):
        assert torch.equal(b["x"], w)
    assert all(torch.equal(dl._host[n], before[n]) for n in before)
    dev = {"__key__": dl._keys, "__weight__": dl._weights, **dl._host}
    res = list(transfer.resident_batches(dev, order, dl._bounds(order.size), ["x"], device=torch.device("cpu"),
                                         var_rows=None))
    res[0]["x"].fill_(-7.0)
    assert torch.equal(res[1]["x"], want[1]) and torch.equal(dl._host["x"], before["x"])
