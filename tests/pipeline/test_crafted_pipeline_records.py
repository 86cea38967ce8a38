"""What a pipeline stored that a crafted or damaged store holds otherwise (a saved loop state or an
update decision nested too deep for the JSON decoder, a state that is not zstd, a decision that is
no mapping) reads as damage, :class:`CorruptionError`, not as ``RecursionError``, the
decompressor's own error or an ``AttributeError``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import zstandard

from modyn_store import Store, TrainSet
from modyn_store.app.pipeline.online import PROGRESS_SCHEMA, PROGRESS_TABLE, STATE_SCHEMA, STATE_TABLE, read_state
from modyn_store.core.errors import CorruptionError

DEEP = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.mark.parametrize("state", [zstandard.ZstdCompressor().compress(DEEP), b"not zstd"])
def test_a_saved_state_that_does_not_decode_is_corruption(tmp_path: Path, state: bytes) -> None:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2]}))
    with store.transaction("pipeline", message="p at version 1") as txn:
        txn.append(PROGRESS_TABLE, pa.Table.from_pylist(
            [{"pipeline": "p", "processed_version": 1, "trainings": 0, "seen_rows": 2, "last_training": None}],
            schema=PROGRESS_SCHEMA))
        txn.append(STATE_TABLE, pa.Table.from_pylist(
            [{"pipeline": "p", "processed_version": 1, "state": state}], schema=STATE_SCHEMA))
    with pytest.raises(CorruptionError, match="saved state of pipeline 'p' at version 2"):
        read_state(store, "p")


@pytest.mark.parametrize("decision", [DEEP.decode(), "[1, 2]", "not json"])
def test_a_recorded_update_decision_that_is_no_mapping_is_corruption(tmp_path: Path, decision: str) -> None:
    import numpy as np

    from modyn_store.app.pipeline.history import trainings_table
    from modyn_store.core.trainings import Catalog

    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": [1, 2]}))
    catalog = Catalog(store)
    catalog.record_training("p-0", TrainSet.uniform(np.array([0, 1]), version=1), update_decision=decision)
    with pytest.raises(CorruptionError, match="training 'p-0': its recorded update decision"):
        trainings_table(catalog.list())
