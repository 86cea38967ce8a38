"""Vector scores (embeddings) given as an Arrow fixed-size list column, as ``scores.as_of``
returns them, are written like the same ``(n, d)`` NumPy array; other Arrow forms are refused
naming the forms taken, and leave the store as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import InvalidArgumentError, Store


def _store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "s"), create=True)
    store.append(pa.table({"ts": np.arange(4)}))
    return store


def _fsl(flat: Any, d: int) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), d)


def _vectors(store: Store, name: str) -> list:
    return store.scores.as_of(None, name).column("value").to_pylist()


@pytest.mark.parametrize("values", [
    _fsl([0.5, 1.5, 2.5, 3.5, 4.5, 5.5], 2),
    _fsl([9.0, 9.0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5], 2).slice(1),  # a slice: its offset applies
    pa.chunked_array([_fsl([0.5, 1.5], 2), _fsl([2.5, 3.5, 4.5, 5.5], 2)]),
    _fsl(np.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5], np.float32), 2),
], ids=["array", "slice", "chunked", "float32"])
def test_a_fixed_size_list_column_is_written_as_its_vectors(tmp_path: Path, values: pa.Array) -> None:
    store = _store(tmp_path)
    store.scores.write("emb", [0, 1, 2], values)
    assert _vectors(store, "emb") == [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]]
    # what a read returns is written back the same way
    store.scores.write("emb", [0, 1, 2], store.scores.as_of(None, "emb").column("value"))
    assert _vectors(store, "emb") == [[0.5, 1.5], [2.5, 3.5], [4.5, 5.5]]


@pytest.mark.parametrize(("values", "words"), [
    (pa.array([[0.5, 1.5], [2.5], [3.5, 4.5]]), "FixedSizeListArray"),  # variable-size lists
    (_fsl([0.5, None, 2.5, 3.5, 4.5, 5.5], 2), "1 null vector components"),
    (pa.FixedSizeListArray.from_arrays(pa.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5]), 2,
                                       mask=pa.array([False, True, False])), "1 null scores"),
    (_fsl(["a", "b", "c"], 1), "FixedSizeListArray"),
    (_fsl([0.5, float("nan"), 2.5, 3.5, 4.5, 5.5], 2), "NaN or inf"),
], ids=["variable-lists", "null-component", "null-vector", "strings", "nan"])
def test_other_arrow_vectors_are_refused(tmp_path: Path, values: pa.Array, words: str) -> None:
    store = _store(tmp_path)
    before = store.version
    with pytest.raises(InvalidArgumentError, match=words) as err:
        store.scores.write("emb", [0, 1, 2], values)
    assert err.value.name == "values"
    assert store.version == before and store.scores.names() == []
