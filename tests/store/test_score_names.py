"""A score is written once a version that wrote it committed: the table a score write killed
before its commit left on disk (until the next writer's recovery drops it) is no score."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import InvalidArgumentError, Store


def _killed_score_write(store: Store, uri: str, name: str, version: int) -> None:
    """What a write of the new score ``name`` (plain floats) killed after Lance created its
    table leaves: the intent naming the table, and the table with rows of ``version``."""
    with open(os.path.join(uri, "_txn", "intent.json"), "w") as fh:
        json.dump({"version": version, "op": "scores", "created": [f"scores/{name}"]}, fh)
    store._tables.append(f"scores/{name}", pa.table({
        "key": pa.array([1], pa.int64()), "value": [9.0], "training_id": pa.array([None], pa.string()),
        "_version": pa.array([version], pa.int64())}))


def test_a_score_table_no_version_committed_is_no_score(tmp_path: Path) -> None:
    uri = str(tmp_path / "s")
    store = Store.open(uri, create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    store.scores.write("loss", [0, 1], [0.5, 0.25])
    _killed_score_write(store, uri, "emb", 3)
    assert os.path.isdir(os.path.join(uri, "scores", "emb.lance"))  # (on disk until a writer recovers)
    assert store.scores.names() == ["loss"]
    for read in (lambda: store.scores.as_of(None, "emb"), lambda: store.scores.batches(None, "emb")):
        with pytest.raises(InvalidArgumentError, match="written score name"):
            read()
    # the first committed write of "emb" sets its type: vectors, whatever the leftover held
    rec = store.scores.write("emb", [2, 3], np.ones((2, 2)))
    assert rec.version == 3 and store.scores.names() == ["emb", "loss"]
    t = store.scores.as_of(None, "emb")
    assert t.column("key").to_pylist() == [2, 3]
    assert t.column("value").to_pylist() == [[1.0, 1.0], [1.0, 1.0]]
