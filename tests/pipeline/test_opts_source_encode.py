"""``source.encode`` adds the columns it names to the loaded stream (checked on tiny tables, with
no data set download): ``hashed_bow`` a ``features`` bag of words, ``ids`` ``sparse`` and
``dense``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from modyn_store.app.pipeline.source import _subset
from modyn_store.app.pipeline.source_spec import SourceConfig


def test_hashed_bow_adds_features_from_text() -> None:
    t = pa.table({"ts": [1, 2], "text": ["red red blue", ""], "label": [0, 1]})
    assert "features" not in _subset(SourceConfig(dataset="elec2"), t).column_names
    out = _subset(SourceConfig(dataset="elec2", encode="hashed_bow"), t)
    bags = np.asarray(out.column("features").to_pylist(), dtype=np.float64)
    assert bags.shape[0] == 2 and bags[0].sum() > 0 and bags[1].sum() == 0  # words counted; no text, no words


def test_ids_adds_sparse_ids_and_dense_features() -> None:
    t = pa.table({"ts": [1, 2], "user_id": [7, 8], "item_id": [3, 4], "features": [[0.5], [1.5]], "label": [0, 1]})
    out = _subset(SourceConfig(dataset="elec2", encode="ids"), t)
    assert out.column("sparse").to_pylist() == [[7, 3], [8, 4]]
    assert out.column("dense").to_pylist() == [[0.5], [1.5]]
