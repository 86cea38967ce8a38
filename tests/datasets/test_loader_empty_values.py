"""Loaders refuse a source file with an empty value where it would become a wrong label, a wrong
time or NaN features (an empty numeric in the warm-up rows would make every row's features NaN),
and a negative movie id (it would pick another movie's genres)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store.app.datasets.movielens import GENRES, load_movielens
from modyn_store.app.datasets.tabular import ELEC2_NUMERIC, NOAA_NUMERIC, load_elec2, load_noaa
from modyn_store.core.errors import InvalidArgumentError

N = 12


def _with_null(table: pa.Table, column: str, row: int = 0) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = None
    i = table.schema.get_field_index(column)
    return table.set_column(i, column, pa.array(values, table.column(column).type))


def _noaa() -> pa.Table:
    cols: dict[str, object] = {"day": np.arange(N, dtype=np.int64), "rain": np.arange(N, dtype=np.int64) % 2}
    cols.update({c: np.linspace(0.0, 1.0, N) for c in NOAA_NUMERIC})
    return pa.table(cols)


def _elec2() -> pa.Table:
    cols: dict[str, object] = {"day": (np.arange(N, dtype=np.int64) % 7) + 1,
                               "class": pa.array(["UP", "DOWN"] * (N // 2))}
    cols.update({c: np.linspace(0.0, 1.0, N) for c in ELEC2_NUMERIC})
    return pa.table(cols)


@pytest.mark.parametrize("column", ["rain", "day", "temp"])
def test_noaa_empty_value_is_refused(tmp_path: Path, column: str) -> None:
    pq.write_table(_with_null(_noaa(), column), tmp_path / "noaa_weather.parquet")
    with pytest.raises(InvalidArgumentError, match=column):
        load_noaa(tmp_path)


@pytest.mark.parametrize("column", ["class", "nswprice"])
def test_elec2_empty_value_is_refused(tmp_path: Path, column: str) -> None:
    pq.write_table(_with_null(_elec2(), column), tmp_path / "elec2.parquet")
    with pytest.raises(InvalidArgumentError, match=column):
        load_elec2(tmp_path)


def test_complete_noaa_file_still_loads(tmp_path: Path) -> None:
    pq.write_table(_noaa(), tmp_path / "noaa_weather.parquet")
    t = load_noaa(tmp_path)
    assert t.column("label").to_pylist() == [i % 2 for i in range(N)]
    assert not np.isnan(np.stack(t.column("features").to_numpy(zero_copy_only=False))).any()


def _ratings() -> pa.Table:
    return pa.table({
        "user_id": np.arange(N, dtype=np.int64), "movie_id": (np.arange(N, dtype=np.int64) % 3) + 1,
        "rating": np.full(N, 4, dtype=np.int64), "timestamp": np.arange(N, dtype=np.int64) + 880_000_000,
        "age": np.full(N, 30, dtype=np.int64), "gender": pa.array(["F"] * N), "occupation": pa.array(["artist"] * N),
    })


def _items() -> pa.Table:
    cols: dict[str, object] = {"movie_id": np.array([1, 2, 3], dtype=np.int64)}
    cols.update({g: np.array([1, 0, 0], dtype=np.int64) for g in GENRES})
    return pa.table(cols)


def test_movielens_empty_age_is_refused(tmp_path: Path) -> None:
    pq.write_table(_with_null(_ratings(), "age"), tmp_path / "movielens100k.parquet")
    pq.write_table(_items(), tmp_path / "movielens100k_items.parquet")
    with pytest.raises(InvalidArgumentError, match="age"):
        load_movielens(tmp_path)


def test_movielens_negative_movie_id_is_refused(tmp_path: Path) -> None:
    ratings = _ratings()
    ids = ratings.column("movie_id").to_pylist()
    ids[0] = -1  # numpy would read the genres of the highest movie id
    ratings = ratings.set_column(1, "movie_id", pa.array(ids, pa.int64()))
    pq.write_table(ratings, tmp_path / "movielens100k.parquet")
    pq.write_table(_items(), tmp_path / "movielens100k_items.parquet")
    with pytest.raises(InvalidArgumentError, match="movie_id"):
        load_movielens(tmp_path)


def test_complete_movielens_file_still_loads(tmp_path: Path) -> None:
    pq.write_table(_ratings(), tmp_path / "movielens100k.parquet")
    pq.write_table(_items(), tmp_path / "movielens100k_items.parquet")
    t = load_movielens(tmp_path)
    assert t.num_rows == N
    assert not np.isnan(np.stack(t.column("features").to_numpy(zero_copy_only=False))).any()
