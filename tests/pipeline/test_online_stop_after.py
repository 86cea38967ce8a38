"""Online runner: stop_after bounds the versions processed; a restart keeps next-slice evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.pipeline.config import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.online import OnlineRunner

CFG = {"name": "live", "source": {"dataset": "elec2"}, "model": {"name": "logreg", "params": {"n_classes": 2}},
       "trigger": {"name": "data_amount", "every": 20}}


def _append(store: Store, i: int) -> None:
    x = np.random.default_rng(i).standard_normal((30, 2)).astype(np.float32)
    store.append(pa.table({"ts": np.arange(30 * i, 30 * i + 30), "label": (x[:, 0] > 0).astype(np.int64),
                           "features": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 2)}))


def test_stop_after_does_not_process_later_versions() -> None:
    store = Store.open("memory://online-stop-after", create=True)
    for i in range(4):
        _append(store, i)
    runner = OnlineRunner(parse_pipeline(CFG), store, poll=0.01)
    runner.run(stop_after=2, idle_timeout=0.05)
    assert runner.processed == 2
    assert runner.loop is not None
    assert [t.cutoff for t in runner.loop.trainings] == [(1, 20), (2, 10), (2, 30)]


def test_model_serving_across_a_restart_is_evaluated_when_replaced() -> None:
    store = Store.open("memory://online-restart-slice", create=True)
    _append(store, 0)
    first = OnlineRunner(parse_pipeline(CFG), store, poll=0.01)
    first.run(idle_timeout=0.05)
    assert first.loop is not None
    last = first.loop.trainings[-1].training_id
    _append(store, 1)
    second = OnlineRunner(parse_pipeline(CFG), store, poll=0.01)
    second.run(idle_timeout=0.05)
    assert [n.training_id for n in second.next_slice][:1] == [last]


def test_a_deletions_section_is_refused_before_the_store_is_made(tmp_path: Path) -> None:
    cfg = parse_pipeline({**CFG, "deletions": {"every": 2, "fraction": 0.1, "mode": "erase"}})
    with pytest.raises(PipelineConfigError, match="deletions"):
        OnlineRunner(cfg, tmp_path / "live", poll=0.01)
    assert not (tmp_path / "live").exists()


@pytest.mark.parametrize("progress_every", [1, 10])
def test_a_step_that_raised_is_taken_again_from_the_saved_progress(progress_every: int) -> None:
    """A step whose ``on_training`` raised after its trigger consumed versions: the next step goes
    on as a restarted process would (the trainings recorded before the failure adopted, none made
    twice), not with the trigger's refusal of versions fed again, nor with a training too many."""
    plain = Store.open(f"memory://online-retry-plain-{progress_every}", create=True)
    failing = Store.open(f"memory://online-retry-fail-{progress_every}", create=True)
    for store in (plain, failing):
        for i in range(3):
            _append(store, i)
    reference = OnlineRunner(parse_pipeline(CFG), plain, poll=0.01, progress_every=progress_every)
    reference.step()
    assert reference.loop is not None
    want = [t.cutoff for t in reference.loop.trainings]
    assert len(want) >= 3

    calls: list[tuple[int, int]] = []

    def fails_once(info: object) -> None:
        calls.append(info.cutoff)  # type: ignore[attr-defined]
        if len(calls) == 2:
            raise RuntimeError("the callback failed")

    runner = OnlineRunner(parse_pipeline(CFG), failing, poll=0.01, progress_every=progress_every,
                          on_training=fails_once)
    with pytest.raises(RuntimeError, match="the callback failed"):
        runner.step()
    runner.step()
    assert runner.loop is not None
    assert [t.cutoff for t in runner.loop.trainings] == want
    from modyn_store.core.trainings import Catalog

    assert len(Catalog(failing).list()) == len(want)  # no training made twice
