"""CLOC arrays whose values a cast would wrap (labels or seconds beyond int64, seconds that
overflow once the time origin is added) or whose features are not finite float32 are refused,
not loaded as wrong labels, wrapped times or NaN features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modyn_store.app.datasets.cloc import load_cloc
from modyn_store.core.errors import InvalidArgumentError


def _save(folder: Path, features: np.ndarray, labels: np.ndarray, time: np.ndarray) -> Path:
    np.save(folder / "features.npy", features)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "time.npy", time)
    return folder


@pytest.mark.parametrize(("labels", "time", "bad"), [
    (np.array([1, 2]), np.array([0.5, 1e19]), "time.npy"),
    (np.array([1.0, 1e19]), np.array([0, 1]), "labels.npy"),
    (np.array([1, 2]), np.array([2**63 - 10, 1], dtype=np.int64), "time.npy"),
])
def test_values_beyond_int64_are_refused(tmp_path: Path, labels: np.ndarray, time: np.ndarray, bad: str) -> None:
    _save(tmp_path, np.ones((2, 2)), labels, time)
    with pytest.raises(InvalidArgumentError, match=bad):
        load_cloc(tmp_path)


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e39])
def test_non_finite_features_are_refused(tmp_path: Path, value: float) -> None:
    _save(tmp_path, np.array([[value, 1.0], [1.0, 1.0]]), np.array([1, 2]), np.array([0, 1]))
    with pytest.raises(InvalidArgumentError, match="features.npy"):
        load_cloc(tmp_path)


def test_in_range_arrays_still_load(tmp_path: Path) -> None:
    t = load_cloc(_save(tmp_path, np.ones((2, 2)), np.array([1.0, 2.0]), np.array([1.5, 0.5])))
    assert t.column("label").to_pylist() == [2, 1]
    assert t.column("ts").cast("int64").to_pylist() == [1_072_915_200, 1_072_915_201]
