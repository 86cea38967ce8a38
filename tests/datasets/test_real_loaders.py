"""The loaders of the real streams, checked against the raw Parquet files."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from modyn_store.app.datasets import DATASETS, chunk_index, load
from modyn_store.core.errors import InvalidArgumentError, InvalidNameError

# Row counts stated in the data folder's README.
README_ROWS = {
    "elec2": 45_312,
    "noaa_weather": 18_159,
    "weather_aus": 275_410,
    "acs_employment_ma": 277_677,
    "reuters21578": 21_578,
    "reuters21578_earn": 21_578,
    "movielens100k": 100_000,
}


@cache
def _load(name: str, data: Path) -> pa.Table:
    return load(name, data)


def _raw(data: Path, name: str) -> pd.DataFrame:
    return pq.read_table(data / DATASETS[name].filename).to_pandas()


@pytest.mark.parametrize("name", sorted(README_ROWS))
def test_canonical_shape(name: str, data_dir: Path) -> None:
    spec = DATASETS[name]
    table = _load(name, data_dir)
    raw_rows = pq.read_metadata(data_dir / spec.filename).num_rows
    assert raw_rows == README_ROWS[name]
    if name == "weather_aus":
        dropped = pq.read_table(data_dir / spec.filename, columns=["RainTomorrow"]).column(0).null_count
        assert table.num_rows == raw_rows - dropped
    else:
        assert table.num_rows == raw_rows
    assert table.column_names[:3] == ["key", "ts", "label"]
    assert table.schema.field("key").type == pa.int64()
    assert table.schema.field("label").type == pa.int64()
    ts_type = table.schema.field("ts").type
    assert pa.types.is_timestamp(ts_type) or ts_type == pa.int64()
    key = table.column("key").to_numpy()
    assert len(np.unique(key)) == len(key) and key.min() >= 0 and key.max() < raw_rows
    # event-time order, source order breaking ties
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    assert np.all(np.diff(ts) >= 0)
    tie = np.diff(ts) == 0
    assert np.all(np.diff(key)[tie] > 0)
    label = table.column("label").to_numpy()
    assert label.min() >= 0 and label.max() < spec.n_classes
    for col in ["key", "ts", "label", *spec.feature_columns, *spec.categorical_columns]:
        assert table.column(col).null_count == 0, col
    for col in spec.feature_columns:
        assert table.schema.field(col).type == pa.float32(), col
        assert np.isfinite(table.column(col).to_numpy()).all(), col
    for col in spec.categorical_columns:
        assert table.schema.field(col).type == pa.int64(), col
    if spec.n_features is None:
        assert "features" not in table.column_names
        assert table.schema.field("text").type == pa.string()
    else:
        ftype = table.schema.field("features").type
        assert pa.types.is_fixed_size_list(ftype) and ftype.value_type == pa.float32()
        assert ftype.list_size == spec.n_features
        flat = table.column("features").combine_chunks().flatten().to_numpy()
        assert table.column("features").null_count == 0 and np.isfinite(flat).all()
    assert "RISK_MM" not in table.column_names
    chunks = chunk_index(table.column("ts"), spec.default_chunking)
    assert chunks[0] == 0 and np.all(np.diff(chunks) >= 0) and len(np.unique(chunks)) >= 4


def test_elec2_time_and_label(data_dir: Path) -> None:
    table = _load("elec2", data_dir)
    raw = _raw(data_dir, "elec2")
    key = table.column("key").to_numpy()
    assert np.array_equal(table.column("label").to_numpy(), (raw["class"].to_numpy()[key] == "UP").astype(int))
    ts = pd.to_datetime(table.column("ts").to_numpy())
    assert np.array_equal(ts.day_of_week.to_numpy() + 1, raw["day"].to_numpy()[key])
    assert np.allclose((ts.hour * 2 + ts.minute // 30).to_numpy() / 47, raw["period"].to_numpy()[key], atol=1e-5)
    assert ts[-1] == pd.Timestamp("1998-12-06 23:30")


def test_features_standardized_on_warmup(data_dir: Path) -> None:
    table = _load("noaa_weather", data_dir)
    feats = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    head = feats[: int(round(len(feats) * 0.1))]
    assert np.allclose(head.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(head.std(axis=0), 1, atol=1e-3)
    raw = table.column("temp").to_numpy().astype(np.float64)
    ref = (raw - raw[: len(head)].mean()) / raw[: len(head)].std()
    assert np.allclose(feats[:, 0], ref, atol=1e-4)
    plain = load("noaa_weather", data_dir, standardize=False)
    assert np.allclose(np.stack(plain.column("features").to_numpy(zero_copy_only=False))[:, 0], raw)


def test_weather_aus_nulls_filled_deterministically(data_dir: Path) -> None:
    table = _load("weather_aus", data_dir)
    raw = _raw(data_dir, "weather_aus")
    key = table.column("key").to_numpy()
    assert np.array_equal(table.column("label").to_numpy(), (raw["RainTomorrow"].to_numpy()[key] == "Yes").astype(int))
    sunshine = raw["Sunshine"].to_numpy()[key]
    observed = ~np.isnan(sunshine)
    got = table.column("Sunshine").to_numpy()
    assert np.allclose(got[observed], sunshine[observed], atol=1e-4)
    head = max(1, int(round(len(key) * 0.1)))
    fill = np.nanmean(sunshine[:head])
    assert np.allclose(got[~observed], fill, atol=1e-4)
    feats = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    sunshine_missing = feats[:, 16 + 4]  # indicator block follows the 16 numerics
    assert np.array_equal(sunshine_missing.astype(bool), ~observed)
    assert np.array_equal(load("weather_aus", data_dir).column("Sunshine").to_numpy(), got)


def test_acs_one_hot_matches_codes(data_dir: Path) -> None:
    table = _load("acs_employment_ma", data_dir)
    raw = _raw(data_dir, "acs_employment_ma")
    key = table.column("key").to_numpy()
    assert np.array_equal(raw["id"].to_numpy()[key], key)
    assert np.array_equal(table.column("ts").to_numpy(), raw["year"].to_numpy()[key])
    assert np.array_equal(table.column("SCHL").to_numpy(), raw["SCHL"].astype(int).to_numpy()[key])
    feats = np.stack(table.column("features").to_numpy(zero_copy_only=False)[:1000])
    # the SCHL block comes right after AGEP: position 1 + code (codes 0..24)
    schl = table.column("SCHL").to_numpy()[:1000]
    assert np.array_equal(feats[:, 1:26].argmax(axis=1), schl)
    assert np.allclose(feats[:, 1:].sum(axis=1), 15)  # one hot per categorical


def test_reuters_views(data_dir: Path) -> None:
    raw = _raw(data_dir, "reuters21578")
    earn = load("reuters21578_earn", data_dir)
    assert earn.column("label").to_numpy().sum() == sum("earn" in t for t in raw["topics"])
    top = _load("reuters21578", data_dir)
    labels = top.column("label").to_numpy()
    no_topic = np.array([len(t) == 0 for t in raw["topics"]])[top.column("key").to_numpy()]
    assert np.all(labels[no_topic] == 10)
    assert (~no_topic).sum() == 11_367  # stories with at least one topic, as the README states
    three = load("reuters21578", data_dir, n_topics=3)
    assert three.column("label").to_numpy().max() == 3
    missing = raw.index[raw["date"].isna()].tolist()
    assert len(missing) == 1
    newid = int(raw["newid"][missing[0]])
    before = raw[raw["newid"] < newid].sort_values("newid")["date"].dropna().iloc[-1]
    row = top.filter(pc.equal(top.column("newid"), newid))
    assert pd.Timestamp(row.column("ts")[0].as_py()) == before
    first = top.slice(0, 1).to_pylist()[0]
    src = raw.iloc[first["key"]]
    assert first["text"] == f"{src['title']}\n\n{src['body']}"
    with pytest.raises(InvalidArgumentError, match="view"):
        load("reuters21578", data_dir, view="bogus")


def test_movielens_clicks_and_genres(data_dir: Path) -> None:
    table = _load("movielens100k", data_dir)
    raw = _raw(data_dir, "movielens100k")
    key = table.column("key").to_numpy()
    assert "rating" not in table.column_names
    assert np.array_equal(table.column("label").to_numpy(), (raw["rating"].to_numpy()[key] >= 4).astype(int))
    items = pq.read_table(data_dir / "movielens100k_items.parquet").to_pandas().set_index("movie_id")
    feats = np.stack(table.column("features").to_numpy(zero_copy_only=False)[:500])
    movies = table.column("movie_id").to_numpy()[:500]
    assert np.array_equal(feats[:, -19:], items.loc[movies].iloc[:, 4:].to_numpy(dtype=np.float32))
    assert np.array_equal(table.column("ts").cast(pa.int64()).to_numpy(), raw["timestamp"].to_numpy()[key])


def test_errors_name_the_choices(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidNameError, match="elec2"):
        load("elec3", data_dir)
    with pytest.raises(InvalidArgumentError, match="standardize"):
        load("elec2", data_dir, standardise=True)
    with pytest.raises(InvalidArgumentError, match="path"):
        load("elec2", tmp_path)
    with pytest.raises(InvalidArgumentError, match="path"):
        load("elec2")


def test_file_path_equals_folder_path(data_dir: Path) -> None:
    a = load("noaa_weather", data_dir)
    b = load("noaa_weather", data_dir / "noaa_weather.parquet")
    assert a.equals(b)
