"""The state an online pipeline saves with each progress row stays small and is read back one
row at a time: compressed, holding of the erased keys only those a later training decision
needs, and a restart reads the row saved with the last progress row, not every earlier one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zstandard

from modyn_store import Store
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.online import STATE_TABLE, OnlineRunner, read_progress, read_state

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_online_resume_after_erasure import AMOUNT, _cfg, _grow, _run  # noqa: E402


def test_the_state_is_compressed_json_and_a_restart_reads_one_row(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    _grow(store, 0, 4)
    _run(store, AMOUNT)
    _grow(store, 4, 6)
    _run(Store.open(store.uri), AMOUNT)
    rows = store.read_table(STATE_TABLE)
    assert rows is not None and rows.num_rows >= 2 and rows.schema.field("state").type == pa.binary()
    last = read_progress(store, "live")
    saved = [r for r in rows.to_pylist() if r["_version"] == last["_version"]]
    assert len(saved) == 1
    state = json.loads(zstandard.ZstdDecompressor().decompress(saved[0]["state"]))
    assert read_state(store, "live") == (saved[0]["processed_version"], state)

    seen: list[str | None] = []
    real = Store.read_table

    def spy(self: Store, name: str, version: object = None, *, filter: str | None = None) -> pa.Table | None:
        t = real(self, name, version, filter=filter)
        if name == STATE_TABLE:
            seen.append(filter)
            assert t is not None and t.num_rows == 1  # the row of the last progress row only
        return t

    monkeypatch.setattr(Store, "read_table", spy)
    assert read_state(store, "live") is not None and seen and f"_version = {last['_version']}" in seen[0]


def test_keys_erased_that_no_training_since_the_last_retrain_used_are_not_kept(tmp_path: Path) -> None:
    # the first train set holds rows 0..129; rows 150.. were never trained: their erasure is no
    # later decision's business, and an erasure of millions of such keys must not ride along in
    # every state saved after it
    store = Store.open(str(tmp_path / "s"), create=True)
    _grow(store, 0, 4)
    runner = _run(store, {"name": "data_amount", "every": 130})
    store.erase(np.arange(150, 190), reason="request")
    store.erase([3, 4], reason="request")
    _run(store, {"name": "data_amount", "every": 130}, runner)
    _, state = read_state(store, "live")
    assert state["erased_since"] == [3, 4]


def test_a_saved_state_that_is_not_this_versions_is_refused_with_a_typed_error(tmp_path: Path) -> None:
    from modyn_store.app.pipeline import parse_pipeline

    store = Store.open(str(tmp_path / "s"), create=True)
    _grow(store, 0, 4)
    _run(store, AMOUNT)
    _, state = read_state(store, "live")
    runner = OnlineRunner(parse_pipeline(_cfg(AMOUNT)), Store.open(store.uri), poll=0.01)
    runner._ensure_loop()
    for bad in ({k: v for k, v in state.items() if k != "cutoffs"}, {**state, "pending": [1]}, [1, 2]):
        with pytest.raises(PipelineConfigError, match="is not one this version reads"):
            runner.loop.restore(bad)
        assert not runner.loop.trainings


def test_a_runner_whose_restore_failed_keeps_no_half_restored_loop(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import modyn_store.app.pipeline.online as online
    from modyn_store.app.pipeline import parse_pipeline

    store = Store.open(str(tmp_path / "s"), create=True)
    _grow(store, 0, 4)
    _run(store, AMOUNT)
    processed, state = read_state(store, "live")
    monkeypatch.setattr(online, "read_state", lambda s, name: (processed, {**state, "trainings": 5}))
    runner = OnlineRunner(parse_pipeline(_cfg(AMOUNT)), Store.open(store.uri), poll=0.01)
    with pytest.raises(PipelineConfigError, match="damaged"):
        runner.step()
    assert runner.loop is None and runner.processed == 0
