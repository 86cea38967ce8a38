"""Shared fixtures: small stores with every supported column kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from modyn_store import Store


def sample_table(n: int, *, start: int = 0, seed: int = 0) -> pa.Table:
    """Rows with numbers, a fixed-size tensor, binary and string columns; key = start + i."""
    rng = np.random.default_rng(seed)
    keys = np.arange(start, start + n, dtype=np.int64)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    blobs = [rng.bytes(int(k % 7)) for k in keys]
    return pa.table(
        {
            "key": keys,
            "ts": keys * 10,
            "label": (keys % 3).astype(np.int64),
            "x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 8),
            "img": pa.array(blobs, pa.binary()),
            "text": [f"row-{k}-" + "z" * int(k % 5) for k in keys],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """A local store with 2,000 rows appended in two versions."""
    s = Store.open(str(tmp_path / "store"), create=True)
    s.append(sample_table(1200, seed=1))
    s.append(sample_table(800, start=1200, seed=2))
    return s


def reference_rows(store: Store, keys: np.ndarray, columns: list[str]) -> dict[str, list]:
    """The rows of ``keys`` read plainly through the snapshot API, as Python lists."""
    t = store.as_of(None).to_table(["key", *[c for c in columns if c != "key"]])
    pos = {k: i for i, k in enumerate(t.column("key").to_pylist())}
    idx = [pos[int(k)] for k in keys]
    return {c: t.column(c).take(pa.array(idx, pa.int64())).to_pylist() for c in ["key", *columns]}


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """The (strategy, threads) of every materialization the loader plans from here on (the
    planning itself runs as it is)."""
    import training.entries as entries

    seen: list[tuple[Any, Any]] = []
    real_plan = entries.plan

    def plan(*args: Any, **kwargs: Any) -> Any:
        seen.append((kwargs.get("strategy"), kwargs.get("threads")))
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(entries, "plan", plan)
    return seen
