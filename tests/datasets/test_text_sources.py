"""Text data: refused as features with the way to bring it (an embedding column), which works."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap, SourceError
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError


def _news(tmp_path: Path, embedding: bool) -> str:
    n = 40
    cols: dict = {"time": np.arange(n), "text": ["grain up", "rates cut"] * (n // 2), "topic": ["g", "m"] * (n // 2)}
    if embedding:
        cols["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(np.eye(4, dtype=np.float32)[np.arange(n) % 2]
                                                                       .ravel()), 4)
    path = str(tmp_path / ("emb.parquet" if embedding else "text.parquet"))
    pq.write_table(pa.table(cols), path)
    return path


def test_text_without_numbers_is_refused_naming_the_way_to_bring_it(tmp_path: Path) -> None:
    st = Store.open(str(tmp_path / "st"), create=True)
    with pytest.raises(SourceError, match="text embedding as a fixed-size list column") as err:
        append_stream(st, _news(tmp_path, False), ColumnMap(ts="time", label="topic"))
    assert err.value.key == "features"
    assert st.version == 0
    append_stream(st, _news(tmp_path, True), ColumnMap(ts="time", label="topic", features=("embedding",)))
    t = Store.open(str(tmp_path / "st")).as_of().to_table(["features", "text"])
    assert t.schema.field("features").type.list_size == 4 and t.column("text")[1].as_py() == "rates cut"


def test_encode_on_own_data_names_the_embedding_path(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError, match="embedding") as err:
        parse_pipeline({"name": "p", "source": {"path": _news(tmp_path, False), "ts": "time", "label": "topic",
                                                "encode": "hashed_bow"},
                        "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 10}})
    assert err.value.key == "source.encode"
