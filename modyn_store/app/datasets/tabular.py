"""Loaders of the tabular drift benchmarks: Elec2, NOAA weather, weatherAUS and ACS employment.

Each returns a :class:`pyarrow.Table` in event-time order with ``key`` (the row's position in the
source file), ``ts``, ``label`` (int64), one ``float32`` column per numeric feature, ``int64``
code columns for categoricals, and ``features`` (fixed-size list of float32): the numeric block,
standardized with warm-up statistics (see :func:`~modyn_store.app.datasets._encode.feature_vector`),
followed by one-hot / indicator blocks.

Example
-------
>>> from modyn_store.app.datasets.tabular import load_noaa  # doctest: +SKIP
>>> load_noaa("../shared/data").num_rows  # doctest: +SKIP
18159
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modyn_store.app.datasets._encode import (
    binary_label,
    codes,
    feature_vector,
    int_column,
    finish,
    one_hot_codes,
    read_parquet,
    resolve_file,
    time_order,
)
from modyn_store.core.errors import InvalidArgumentError

__all__ = [
    "ACS_CATEGORIES",
    "ELEC2_NUMERIC",
    "NOAA_NUMERIC",
    "WEATHER_AUS_LOCATIONS",
    "WEATHER_AUS_NUMERIC",
    "load_acs_employment",
    "load_elec2",
    "load_noaa",
    "load_weather_aus",
]

ELEC2_NUMERIC = ("period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer")
ELEC2_START = np.datetime64("1996-05-07T00:00:00", "s")

NOAA_NUMERIC = (
    "temp", "dew_point", "sea_level_pressure", "visibility",
    "avg_wind_speed", "max_sustained_wind_speed", "max_temp", "min_temp",
)  # fmt: skip

WEATHER_AUS_NUMERIC = (
    "MinTemp", "MaxTemp", "Rainfall", "Evaporation", "Sunshine", "WindGustSpeed",
    "WindSpeed9am", "WindSpeed3pm", "Humidity9am", "Humidity3pm", "Pressure9am", "Pressure3pm",
    "Cloud9am", "Cloud3pm", "Temp9am", "Temp3pm",
)  # fmt: skip
WEATHER_AUS_DIRECTIONS = ("WindGustDir", "WindDir9am", "WindDir3pm")
COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
WEATHER_AUS_LOCATIONS = (
    "Adelaide", "Albany", "Albury", "AliceSprings", "BadgerysCreek", "Ballarat", "Bendigo",
    "Brisbane", "Cairns", "Canberra", "Cobar", "CoffsHarbour", "Dartmoor", "Darwin", "GoldCoast",
    "Hobart", "Katherine", "Launceston", "Melbourne", "MelbourneAirport", "Mildura", "Moree",
    "MountGambier", "MountGinini", "Newcastle", "Nhil", "NorahHead", "NorfolkIsland", "Nuriootpa",
    "PearceRAAF", "Penrith", "Perth", "PerthAirport", "Portland", "Richmond", "Sale", "SalmonGums",
    "Sydney", "SydneyAirport", "Townsville", "Tuggeranong", "Uluru", "WaggaWagga", "Walpole",
    "Watsonia", "Williamtown", "Witchcliffe", "Wollongong", "Woomera",
)  # fmt: skip

_WEATHER_AUS_COLUMNS = ("Date", "Location", "RainTomorrow", "RainToday", *WEATHER_AUS_NUMERIC, *WEATHER_AUS_DIRECTIONS)

#: Code values of the ACS PUMS categoricals used by the folktables ACSEmployment task.
ACS_CATEGORIES: dict[str, tuple[int, ...]] = {
    "SCHL": tuple(range(0, 25)),
    "MAR": tuple(range(1, 6)),
    "RELP": tuple(range(0, 18)),
    "DIS": (1, 2),
    "ESP": tuple(range(0, 9)),
    "CIT": tuple(range(1, 6)),
    "MIG": tuple(range(0, 4)),
    "MIL": tuple(range(0, 5)),
    "ANC": (1, 2, 3, 4),
    "NATIVITY": (1, 2),
    "DEAR": (1, 2),
    "DEYE": (1, 2),
    "DREM": (0, 1, 2),
    "SEX": (1, 2),
    "RAC1P": tuple(range(1, 10)),
}


def _f32(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy().astype(np.float32)


def _check_elec2_clock(file: Path, key: np.ndarray, day: np.ndarray, period: np.ndarray) -> None:
    """Refuse a file whose rows are not the consecutive half-hours from Tuesday 1996-05-07 00:00.

    ``ts`` is rebuilt from row order, so a missing, repeated or reordered row (or a file that
    starts on another day) would shift every later time without a word; the source's own weekday
    ``day`` (1 = Monday) and half-hour ``period`` (slot / 47) must agree with the rebuilt time.
    """
    weekday = (key // 48 + 1) % 7 + 1  # row 0 is a Tuesday (2)
    slot = key % 48
    wrong = (day != weekday) | ~np.isclose(period * 47.0, slot, atol=1e-3)
    if wrong.any():
        row = int(np.argmax(wrong))
        raise InvalidArgumentError(
            "path", str(file),
            "consecutive half-hours from Tuesday 1996-05-07 00:00, one per row, with no row missing or "
            f"repeated (row {row} has day={int(day[row])}, period={period[row]:.6g}; the row's rebuilt "
            f"time needs day={int(weekday[row])}, period={slot[row] / 47:.6g})",
        )


def load_elec2(path: str | Path, *, standardize: bool = True, warmup: float = 0.1) -> pa.Table:
    """Load Elec2 (New South Wales electricity prices, 1996-05-07 .. 1998-12-05, half-hourly).

    ``ts`` is ``timestamp[s]`` rebuilt from row order: the file holds 944 complete days of 48
    half-hours, starting on Tuesday 1996-05-07 (the source's normalised ``date`` is not
    monotonic, so it is not used). ``label`` is 1 for ``UP``, 0 for ``DOWN``. Features: the six
    numeric columns (already scaled to [0, 1] in the source) and a one-hot of the weekday ``day``
    (1 = Monday .. 7 = Sunday), kept as the int64 column ``day``.

    Examples
    --------
    >>> t = load_elec2("../shared/data")  # doctest: +SKIP
    >>> t.num_rows  # doctest: +SKIP
    45312
    """
    cols_in = ("day", "class", *ELEC2_NUMERIC)  # an empty value would become a wrong label or NaN features
    file = resolve_file(path, "elec2.parquet")
    raw = read_parquet(file, cols_in, complete=cols_in)
    n = raw.num_rows
    key = np.arange(n, dtype=np.int64)
    ts = ELEC2_START + key * np.timedelta64(1800, "s")
    day = int_column(file, raw, "day")
    _check_elec2_clock(file, key, day, raw.column("period").to_numpy().astype(np.float64))
    numeric = np.stack([_f32(raw, c) for c in ELEC2_NUMERIC], axis=1)
    cols: dict[str, pa.Array | np.ndarray] = {
        "key": key,
        "ts": pa.array(ts, type=pa.timestamp("s")),
        "label": binary_label(file, raw, "class", "DOWN", "UP"),
        "day": day,
    }
    for i, c in enumerate(ELEC2_NUMERIC):
        cols[c] = numeric[:, i]
    cols["features"] = feature_vector(numeric, one_hot_codes(day - 1, 7), standardize=standardize, warmup=warmup)
    return finish(cols, np.arange(n))


def load_noaa(path: str | Path, *, standardize: bool = True, warmup: float = 0.1) -> pa.Table:
    """Load the NOAA weather benchmark (Bellevue, Nebraska, 1949-1999, daily): will it rain?

    ``ts`` is the int64 day index ``day`` (0 .. n-1); ``label`` is ``rain``; features are the
    eight daily measurements.

    Examples
    --------
    >>> load_noaa("../shared/data").num_rows  # doctest: +SKIP
    18159
    """
    cols_in = ("day", "rain", *NOAA_NUMERIC)  # an empty value would become a wrong label, day or NaN features
    file = resolve_file(path, "noaa_weather.parquet")
    raw = read_parquet(file, cols_in, complete=cols_in)
    key = np.arange(raw.num_rows, dtype=np.int64)
    numeric = np.stack([_f32(raw, c) for c in NOAA_NUMERIC], axis=1)
    cols: dict[str, pa.Array | np.ndarray] = {
        "key": key,
        "ts": int_column(file, raw, "day"),
        "label": binary_label(file, raw, "rain", 0, 1),
    }
    for i, c in enumerate(NOAA_NUMERIC):
        cols[c] = numeric[:, i]
    cols["features"] = feature_vector(numeric, None, standardize=standardize, warmup=warmup)
    return finish(cols, time_order(pa.array(cols["ts"]), key))


def _direction(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Compass point -> (sin, cos) of its angle; missing or unknown -> (0, 0)."""
    point = codes(values, COMPASS)
    angle = 2.0 * np.pi * point / len(COMPASS)
    known = point >= 0
    sin = np.where(known, np.sin(angle), 0.0).astype(np.float32)
    cos = np.where(known, np.cos(angle), 0.0).astype(np.float32)
    return sin, cos


def load_weather_aus(path: str | Path, *, standardize: bool = True, warmup: float = 0.1) -> pa.Table:
    """Load weatherAUS (49 Australian stations, daily, 2007-11 .. 2026-01): rain tomorrow?

    - ``RISK_MM`` (tomorrow's rainfall) is dropped: it leaks the answer.
    - Rows whose ``RainTomorrow`` is missing are dropped (no label).
    - ``ts`` is ``Date`` (``timestamp[ms]``); rows are sorted by ``(Date, key)``.
    - A missing numeric value is replaced by that column's mean over the warm-up rows (the first
      ``warmup`` share in time order; 0 if none is observed there), and an indicator
      ``<column>_missing`` (1.0 when it was missing) is appended to ``features``.
    - Wind directions become ``<column>_sin`` / ``<column>_cos`` of the compass angle; missing
      gives (0, 0). ``RainToday`` is 1.0 for ``Yes``, else 0.0 (missing exactly when ``Rainfall``
      is, which its indicator records). ``Location`` is the int64 code ``location`` (index in
      :data:`WEATHER_AUS_LOCATIONS`, -1 for a station not in that list) and a one-hot block in
      ``features``.

    ``features`` = 16 standardized numerics, 16 missing indicators, 6 direction components,
    ``RainToday``, 49 location one-hots (88 values).

    Examples
    --------
    >>> load_weather_aus("../shared/data").column("label").null_count  # doctest: +SKIP
    0
    """
    file = resolve_file(path, "weather_aus.parquet")
    raw = read_parquet(file, _WEATHER_AUS_COLUMNS, complete=("Date",))
    key_all = np.arange(raw.num_rows, dtype=np.int64)
    keep = pc.is_valid(raw.column("RainTomorrow")).to_numpy(zero_copy_only=False)
    raw = raw.filter(pa.array(keep))
    key = key_all[keep]
    order = time_order(raw.column("Date"), key)
    raw = raw.take(pa.array(order))
    key = key[order]
    n = raw.num_rows
    head = max(1, int(round(n * warmup))) if n else 0
    location = codes(raw.column("Location"), WEATHER_AUS_LOCATIONS)
    cols: dict[str, pa.Array | np.ndarray] = {
        "key": key,
        "ts": raw.column("Date").combine_chunks(),
        "label": binary_label(file, raw, "RainTomorrow", "No", "Yes"),
        "location": location,
    }
    numeric = np.empty((n, len(WEATHER_AUS_NUMERIC)), dtype=np.float32)
    missing = np.empty_like(numeric)
    for i, c in enumerate(WEATHER_AUS_NUMERIC):
        values = raw.column(c).to_numpy().astype(np.float64)  # nulls become NaN
        miss = np.isnan(values)
        observed = values[:head][~miss[:head]]
        fill = float(observed.mean()) if observed.size else 0.0
        values[miss] = fill
        numeric[:, i] = values
        missing[:, i] = miss
        cols[c] = numeric[:, i]
    extra = [missing]
    for c in WEATHER_AUS_DIRECTIONS:
        sin, cos = _direction(raw.column(c))
        cols[f"{c}_sin"], cols[f"{c}_cos"] = sin, cos
        extra.append(np.stack([sin, cos], axis=1))
    rain_today = pc.equal(raw.column("RainToday"), "Yes").fill_null(False).to_numpy(zero_copy_only=False)
    cols["RainToday"] = rain_today.astype(np.float32)
    extra.append(cols["RainToday"][:, None])
    extra.append(one_hot_codes(location, len(WEATHER_AUS_LOCATIONS)))
    cols["features"] = feature_vector(numeric, np.concatenate(extra, axis=1), standardize=standardize, warmup=warmup)
    return finish(cols, np.arange(n))


def load_acs_employment(path: str | Path, *, standardize: bool = True, warmup: float = 0.1) -> pa.Table:
    """Load ACS employment, Massachusetts, survey years 2015-2018 (folktables ACSEmployment).

    ``ts`` is the int64 survey ``year``; ``key`` is the source row (equal to the source ``id``).
    ``AGEP`` (age) is the one numeric feature. The 15 categoricals (see :data:`ACS_CATEGORIES`)
    are kept as int64 code columns and one-hot encoded over their fixed code lists (a code
    outside the list gives an all-zero block). ``features`` = standardized ``AGEP`` + 97 one-hots.

    Examples
    --------
    >>> load_acs_employment("../shared/data").num_rows  # doctest: +SKIP
    277677
    """
    cols_in = ("year", "employed", "AGEP", *ACS_CATEGORIES)  # an empty value: wrong label, year or NaN features
    file = resolve_file(path, "acs_employment_ma.parquet")
    raw = read_parquet(file, cols_in, complete=cols_in)
    key = np.arange(raw.num_rows, dtype=np.int64)
    cols: dict[str, pa.Array | np.ndarray] = {
        "key": key,
        "ts": int_column(file, raw, "year"),
        "label": binary_label(file, raw, "employed", 0, 1),
        "AGEP": _f32(raw, "AGEP"),
    }
    blocks = []
    for c, vocab in ACS_CATEGORIES.items():
        code = int_column(file, raw, c)
        cols[c] = code
        blocks.append(one_hot_codes(codes(pa.array(code), vocab), len(vocab)))
    order = time_order(pa.array(cols["ts"]), key)
    # Standardize on the time-ordered rows, so warm-up statistics come from the earliest rows.
    ordered = {k: (v.take(pa.array(order)) if isinstance(v, pa.Array) else np.asarray(v)[order]) for k, v in cols.items()}
    extra = np.concatenate(blocks, axis=1)[order]
    ordered["features"] = feature_vector(ordered["AGEP"][:, None], extra, standardize=standardize, warmup=warmup)
    return finish(ordered, np.arange(raw.num_rows))
