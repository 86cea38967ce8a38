"""The tabular loaders refuse a label value outside the two the data set defines (docs/datasets.md,
"Real streams"): ``"up"`` for Elec2's ``UP``, ``"yes"`` for weatherAUS's ``Yes``, ``2`` or ``0.5``
for NOAA's, ACS's and Criteo's ``0/1`` (an empty Criteo label too). Read loosely, each became class
0 (or a third class) without a word.
Each error names the file and the column.

Elec2's ``ts`` is rebuilt from row order, so a file whose rows are not the consecutive half-hours
from Tuesday 1996-05-07 (a row missing or repeated, another start, a weekday outside 1 .. 7) is
refused naming the first row whose ``day`` / ``period`` disagree with its rebuilt time; read
loosely, every later row's time was shifted."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store.app.datasets.criteo import load_criteo
from modyn_store.app.datasets.tabular import (
    ACS_CATEGORIES,
    ELEC2_NUMERIC,
    NOAA_NUMERIC,
    WEATHER_AUS_DIRECTIONS,
    WEATHER_AUS_NUMERIC,
    load_acs_employment,
    load_elec2,
    load_noaa,
    load_weather_aus,
)
from modyn_store.core.errors import InvalidArgumentError

N = 8


def _elec2(labels: list[object], day: list[int] | None = None, n: int | None = None) -> pa.Table:
    """``n`` consecutive half-hours from Tuesday 1996-05-07 00:00, as the source encodes them."""
    n = len(labels) if n is None else n
    key = np.arange(n)
    cols: dict[str, object] = {"day": day if day is not None else (key // 48 + 1) % 7 + 1,
                               "class": pa.array(labels)}
    cols.update({c: np.linspace(0.0, 1.0, n) for c in ELEC2_NUMERIC})
    cols["period"] = np.round((key % 48) / 47, 6)
    return pa.table(cols)


def _noaa(rain: object) -> pa.Table:
    cols: dict[str, object] = {"day": np.arange(N, dtype=np.int64), "rain": rain}
    cols.update({c: np.linspace(0.0, 1.0, N) for c in NOAA_NUMERIC})
    return pa.table(cols)


def _weather_aus(labels: list[object]) -> pa.Table:
    cols: dict[str, object] = {
        "Date": pa.array(np.arange(N).astype("datetime64[D]").astype("datetime64[ms]")),
        "Location": pa.array(["Albury"] * N), "RainToday": pa.array(["No"] * N),
        "RainTomorrow": pa.array(labels),
    }
    cols.update({c: np.linspace(0.0, 1.0, N) for c in WEATHER_AUS_NUMERIC})
    cols.update({c: pa.array(["N"] * N) for c in WEATHER_AUS_DIRECTIONS})
    return pa.table(cols)


def _acs(employed: object) -> pa.Table:
    cols: dict[str, object] = {"year": np.full(N, 2015, dtype=np.int64), "employed": employed,
                               "AGEP": np.linspace(20.0, 60.0, N)}
    cols.update({c: np.full(N, vocab[0], dtype=np.int64) for c, vocab in ACS_CATEGORIES.items()})
    return pa.table(cols)


@pytest.mark.parametrize("labels", [["up", "DOWN"] * (N // 2), ["UP", "DOWN", "UP", "FLAT"] * (N // 4),
                                    [1, 0] * (N // 2)])
def test_elec2_label_outside_up_down_is_refused(tmp_path: Path, labels: list[object]) -> None:
    pq.write_table(_elec2(labels), tmp_path / "elec2.parquet")
    with pytest.raises(InvalidArgumentError, match=r"elec2\.parquet.*'class'"):
        load_elec2(tmp_path)


@pytest.mark.parametrize("day", [0, 8, 3])
def test_elec2_weekday_not_matching_the_rebuilt_time_is_refused(tmp_path: Path, day: int) -> None:
    days = [2] * N  # the first 48 rows are Tuesday 1996-05-07
    days[3] = day
    pq.write_table(_elec2(["UP", "DOWN"] * (N // 2), days), tmp_path / "elec2.parquet")
    with pytest.raises(InvalidArgumentError, match=rf"elec2\.parquet.*row 3 has day={day}"):
        load_elec2(tmp_path)


@pytest.mark.parametrize("drop", [0, 47, 100])
def test_elec2_file_missing_a_half_hour_is_refused_naming_the_row(tmp_path: Path, drop: int) -> None:
    full = _elec2(["UP", "DOWN"] * 75)
    rows = [i for i in range(full.num_rows) if i != drop]
    pq.write_table(full.take(pa.array(rows)), tmp_path / "elec2.parquet")
    with pytest.raises(InvalidArgumentError, match=rf"elec2\.parquet.*row {drop} has"):
        load_elec2(tmp_path)


def test_elec2_full_days_load_with_their_half_hours(tmp_path: Path) -> None:
    pq.write_table(_elec2(["UP", "DOWN"] * 75), tmp_path / "elec2.parquet")
    ts = load_elec2(tmp_path).column("ts").to_pylist()
    assert [str(ts[i]) for i in (0, 1, 48, 149)] == ["1996-05-07 00:00:00", "1996-05-07 00:30:00",
                                                      "1996-05-08 00:00:00", "1996-05-10 02:30:00"]


@pytest.mark.parametrize("rain", [np.arange(N, dtype=np.int64) % 3, np.full(N, 0.5),
                                  pa.array(["0", "1"] * (N // 2))])
def test_noaa_rain_outside_0_1_is_refused(tmp_path: Path, rain: object) -> None:
    pq.write_table(_noaa(rain), tmp_path / "noaa_weather.parquet")
    with pytest.raises(InvalidArgumentError, match=r"noaa_weather\.parquet.*'rain'"):
        load_noaa(tmp_path)


def test_weather_aus_label_outside_yes_no_is_refused(tmp_path: Path) -> None:
    pq.write_table(_weather_aus(["yes", "No"] * (N // 2)), tmp_path / "weather_aus.parquet")
    with pytest.raises(InvalidArgumentError, match=r"weather_aus\.parquet.*'RainTomorrow'"):
        load_weather_aus(tmp_path)


@pytest.mark.parametrize("employed", [np.full(N, 0.75), np.arange(N, dtype=np.int64) % 3])
def test_acs_employed_outside_0_1_is_refused(tmp_path: Path, employed: object) -> None:
    pq.write_table(_acs(employed), tmp_path / "acs_employment_ma.parquet")
    with pytest.raises(InvalidArgumentError, match=r"acs_employment_ma\.parquet.*'employed'"):
        load_acs_employment(tmp_path)


def test_valid_labels_still_load_with_their_classes(tmp_path: Path) -> None:
    pq.write_table(_elec2(["UP", "DOWN"] * (N // 2)), tmp_path / "elec2.parquet")
    pq.write_table(_noaa(np.arange(N, dtype=np.int64) % 2), tmp_path / "noaa_weather.parquet")
    pq.write_table(_weather_aus(["Yes", "No", None, "No"] * (N // 4)), tmp_path / "weather_aus.parquet")
    pq.write_table(_acs(pa.array([True, False] * (N // 2))), tmp_path / "acs_employment_ma.parquet")
    assert load_elec2(tmp_path).column("label").to_pylist() == [1, 0] * (N // 2)
    assert load_noaa(tmp_path).column("label").to_pylist() == [0, 1] * (N // 2)
    assert load_weather_aus(tmp_path).column("label").to_pylist() == [1, 0, 0] * (N // 4)
    assert sorted(load_acs_employment(tmp_path).column("label").to_pylist()) == [0] * (N // 2) + [1] * (N // 2)


def _criteo_line(label: str) -> str:
    return "\t".join([label, *["1"] * 13, *["0a1b2c3d"] * 26])


@pytest.mark.parametrize(("labels", "row", "found"), [(["0", "1", "2"], 3, "2"), (["0", "", "1"], 2, "None"),
                                                      (["1", "-1"], 2, "-1")])
def test_criteo_label_outside_0_1_is_refused_naming_the_row(tmp_path: Path, labels: list[str], row: int,
                                                            found: str) -> None:
    f = tmp_path / "day_0.gz"
    f.write_bytes(gzip.compress(("\n".join(_criteo_line(x) for x in labels) + "\n").encode()))
    with pytest.raises(InvalidArgumentError, match=rf"day_0\.gz.*row {row} has label {found}"):
        load_criteo(f)


def test_criteo_clicks_still_load(tmp_path: Path) -> None:
    f = tmp_path / "day_0.gz"
    f.write_bytes(gzip.compress(("\n".join(_criteo_line(x) for x in ["0", "1", "0"]) + "\n").encode()))
    assert load_criteo(f).column("label").to_pylist() == [0, 1, 0]


def test_noaa_fractional_day_is_refused_not_truncated(tmp_path: Path) -> None:
    t = _noaa(np.arange(N, dtype=np.int64) % 2)
    t = t.set_column(t.schema.get_field_index("day"), "day", pa.array(np.arange(N) * 0.5))
    pq.write_table(t, tmp_path / "noaa_weather.parquet")
    with pytest.raises(InvalidArgumentError, match=r"noaa_weather\.parquet.*whole numbers in the column 'day'"):
        load_noaa(tmp_path)


@pytest.mark.parametrize(("column", "values"),
                         [("year", pa.array(np.full(N, 2015.5))), ("SCHL", pa.array(["1.5"] * N))])
def test_acs_non_integer_year_or_code_is_refused_naming_the_column(tmp_path: Path, column: str, values: object) -> None:
    t = _acs(np.arange(N, dtype=np.int64) % 2)
    t = t.set_column(t.schema.get_field_index(column), column, values)
    pq.write_table(t, tmp_path / "acs_employment_ma.parquet")
    with pytest.raises(InvalidArgumentError,
                       match=rf"acs_employment_ma\.parquet.*whole numbers in the column '{column}'"):
        load_acs_employment(tmp_path)


def test_whole_float_days_and_string_codes_still_load(tmp_path: Path) -> None:
    noaa = _noaa(np.arange(N, dtype=np.int64) % 2)
    noaa = noaa.set_column(noaa.schema.get_field_index("day"), "day", pa.array(np.arange(N, dtype=np.float64)))
    pq.write_table(noaa, tmp_path / "noaa_weather.parquet")
    acs = _acs(np.arange(N, dtype=np.int64) % 2)
    acs = acs.set_column(acs.schema.get_field_index("SCHL"), "SCHL", pa.array(["3"] * N).dictionary_encode())
    pq.write_table(acs, tmp_path / "acs_employment_ma.parquet")
    assert load_noaa(tmp_path).column("ts").to_pylist() == list(range(N))
    assert load_acs_employment(tmp_path).column("SCHL").to_pylist() == [3] * N
