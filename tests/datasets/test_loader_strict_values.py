"""Data-set loaders refuse values they used to read loosely (docs/datasets.md, "Large community
benchmarks" and "Small real data sets"): a HuffPost date that is not exactly a YYYY-MM-DD calendar
date, a rated MovieLens movie that the items file lacks (or lists twice), a CLOC time outside the
datetime64[ns] range. Each error names the file and the row, line or movie id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store.app.datasets.cloc import CLOC_TIME_ORIGIN, load_cloc
from modyn_store.app.datasets.movielens import GENRES, load_movielens
from modyn_store.app.datasets.wildtime import load_huffpost
from modyn_store.core.errors import InvalidArgumentError


def _news(tmp_path: Path, date: object) -> Path:
    f = tmp_path / "news.json"
    lines = [{"headline": "ok", "category": "Y", "date": "2020-01-01"}, {"headline": "b", "category": "X", "date": date}]
    f.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    return f


@pytest.mark.parametrize("date", ["2020-01-02garbage", "2020-01-02T10:00:00", "2020-02-30", "2020-13-01",
                                  "2020-1-2", " 2020-01-02", 20200102, "2020-01-02\n"])
def test_a_malformed_huffpost_date_is_refused_naming_the_line(tmp_path: Path, date: object) -> None:
    with pytest.raises(InvalidArgumentError, match=r"news\.json:2"):
        load_huffpost(_news(tmp_path, date))


def test_a_well_formed_huffpost_date_still_loads(tmp_path: Path) -> None:
    t = load_huffpost(_news(tmp_path, "2020-02-29"))
    assert [str(v) for v in t.column("ts").to_pylist()] == ["2020-01-01 00:00:00", "2020-02-29 00:00:00"]


def _ratings(movies: list[int]) -> pa.Table:
    n = len(movies)
    return pa.table({
        "user_id": np.arange(n, dtype=np.int64), "movie_id": np.array(movies, dtype=np.int64),
        "rating": np.full(n, 4, dtype=np.int64), "timestamp": np.arange(n, dtype=np.int64) + 880_000_000,
        "age": np.full(n, 30, dtype=np.int64), "gender": pa.array(["F"] * n), "occupation": pa.array(["artist"] * n),
    })


def _items(ids: list[int]) -> pa.Table:
    cols: dict[str, object] = {"movie_id": np.array(ids, dtype=np.int64)}
    cols.update({g: np.ones(len(ids), dtype=np.int64) for g in GENRES})
    return pa.table(cols)


def test_a_rated_movie_missing_from_the_items_is_refused_naming_it(tmp_path: Path) -> None:
    pq.write_table(_ratings([1, 2, 7, 3, 9]), tmp_path / "movielens100k.parquet")
    pq.write_table(_items([1, 2, 3]), tmp_path / "movielens100k_items.parquet")
    with pytest.raises(InvalidArgumentError, match=r"items.*movie_id 7 and 1 more missing"):
        load_movielens(tmp_path)


def test_a_movie_listed_twice_in_the_items_is_refused(tmp_path: Path) -> None:
    pq.write_table(_ratings([1, 2]), tmp_path / "movielens100k.parquet")
    pq.write_table(_items([1, 2, 2]), tmp_path / "movielens100k_items.parquet")
    with pytest.raises(InvalidArgumentError, match=r"movie_id 2 is listed 2 times"):
        load_movielens(tmp_path)


def test_every_rated_movie_gets_its_genres(tmp_path: Path) -> None:
    pq.write_table(_ratings([1, 3, 2]), tmp_path / "movielens100k.parquet")
    pq.write_table(_items([3, 2, 1, 4]), tmp_path / "movielens100k_items.parquet")  # unrated items are fine
    feats = np.stack(load_movielens(tmp_path).column("features").to_numpy(zero_copy_only=False))
    assert feats.shape == (3, 43) and bool((feats[:, -len(GENRES):] == 1).all())


#: whole seconds of the datetime64[ns] range: 1677-09-21T00:12:44 .. 2262-04-11T23:47:16 UTC
NS_SECONDS = (-9_223_372_036, 9_223_372_036)


def _cloc(folder: Path, time: list[int]) -> Path:
    np.save(folder / "features.npy", np.ones((len(time), 2), np.float32))
    np.save(folder / "labels.npy", np.arange(len(time)))
    np.save(folder / "time.npy", np.array(time, dtype=np.int64))
    return folder


@pytest.mark.parametrize(("time", "row"), [
    ([0, 1, -(2**62)], 2),
    ([0, 2**62, 1], 1),
    ([NS_SECONDS[1] - CLOC_TIME_ORIGIN + 1, 0], 0),
    ([0, NS_SECONDS[0] - CLOC_TIME_ORIGIN - 1], 1),
])
def test_a_cloc_time_outside_the_ns_range_is_refused_naming_the_row(tmp_path: Path, time: list[int],
                                                                     row: int) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"time\.npy\[{row}\].*1677-09-21 to 2262-04-11"):
        load_cloc(_cloc(tmp_path, time))


def test_cloc_times_at_the_ends_of_the_range_load_and_read_as_ns(tmp_path: Path) -> None:
    from policies._columns import column_to_numpy

    lo, hi = (b - CLOC_TIME_ORIGIN for b in NS_SECONDS)
    t = load_cloc(_cloc(tmp_path, [hi, 0, lo]))
    assert column_to_numpy(t.column("ts")).tolist() == [NS_SECONDS[0] * 10**9, CLOC_TIME_ORIGIN * 10**9,
                                                        NS_SECONDS[1] * 10**9]
