"""The registry entries of the bundled-format data sets (the real streams under a data folder)
and the Elec2 stream shipped inside the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from modyn_store.app.datasets.movielens import load_movielens
from modyn_store.app.datasets.registry import register
from modyn_store.app.datasets.reuters import load_reuters
from modyn_store.app.datasets.spec import DatasetSpec
from modyn_store.app.datasets.tabular import (
    ACS_CATEGORIES,
    ELEC2_NUMERIC,
    NOAA_NUMERIC,
    WEATHER_AUS_NUMERIC,
    load_acs_employment,
    load_elec2,
    load_noaa,
    load_weather_aus,
)

__all__ = ["bundled_elec2"]


def bundled_elec2() -> Path:
    """The path of the Elec2 stream shipped with the package (45,312 rows, public on OpenML)."""
    return Path(str(resources.files("modyn_store") / "data" / "elec2.parquet"))


register(DatasetSpec(
    name="elec2",
    task="binary",
    time="timestamp[s] of the half-hour, rebuilt from row order from 1996-05-07 00:00",
    feature_columns=ELEC2_NUMERIC,
    n_classes=2,
    n_features=13,
    source_url="https://www.openml.org/d/151",
    license="public on OpenML (Harries 1999, NSW electricity market)",
    default_chunking="7d",
    filename="elec2.parquet",
    description="Price goes UP (1) or DOWN (0) relative to the last 24 hours; 6 scaled numerics + weekday one-hot.",
    loader=load_elec2,
    categorical_columns=("day",),
))
register(DatasetSpec(
    name="noaa_weather",
    task="binary",
    time="int64 day index 0 .. n-1 (1949-1999)",
    feature_columns=NOAA_NUMERIC,
    n_classes=2,
    n_features=8,
    source_url="https://www.ncei.noaa.gov/ (Elwell & Polikar weather drift benchmark)",
    license="NOAA data: US public domain",
    default_chunking="ts:365",
    filename="noaa_weather.parquet",
    description="Will it rain (1) at Bellevue, Nebraska; 8 daily measurements, no missing values.",
    loader=load_noaa,
))
register(DatasetSpec(
    name="weather_aus",
    task="binary",
    time="timestamp[ms] of the observation day",
    feature_columns=(*WEATHER_AUS_NUMERIC, "WindGustDir_sin", "WindGustDir_cos", "WindDir9am_sin",
                     "WindDir9am_cos", "WindDir3pm_sin", "WindDir3pm_cos", "RainToday"),
    n_classes=2,
    n_features=88,
    source_url="https://rattle.togaware.com/weatherAUS.csv (Australian Bureau of Meteorology)",
    license="Bureau of Meteorology acknowledged as source; from the R package rattle (GPL >= 2)",
    default_chunking="year",
    filename="weather_aus.parquet",
    description=(
        "RainTomorrow (1 = Yes). RISK_MM dropped (leaks the answer); rows without a label dropped; "
        "missing numerics filled with the warm-up mean plus a missing indicator; wind directions "
        "as sin/cos; location one-hot."
    ),
    loader=load_weather_aus,
    categorical_columns=("location",),
))
register(DatasetSpec(
    name="acs_employment_ma",
    task="binary",
    time="int64 survey year (2015-2018)",
    feature_columns=("AGEP",),
    n_classes=2,
    n_features=98,
    source_url="https://www.census.gov/programs-surveys/acs/microdata.html (folktables ACSEmployment)",
    license="US Census ACS PUMS: public domain",
    default_chunking="year",
    filename="acs_employment_ma.parquet",
    description="Employed (1) or not; age plus 15 categoricals one-hot over their fixed ACS code lists.",
    loader=load_acs_employment,
    categorical_columns=tuple(ACS_CATEGORIES),
))
register(DatasetSpec(
    name="reuters21578",
    task="multiclass",
    time="timestamp[us] of the story",
    feature_columns=(),
    n_classes=11,
    n_features=None,
    source_url="https://archive.ics.uci.edu/dataset/137/reuters+21578+text+categorization+collection",
    license="Reuters-21578, Distribution 1.0: free distribution for research purposes",
    default_chunking="7d",
    filename="reuters21578.parquet",
    description="Text in `text`; label = most frequent of the top-10 topics it carries, 10 = other/none.",
    loader=load_reuters,
    defaults=(("view", "top"), ("n_topics", 10)),
))
register(DatasetSpec(
    name="reuters21578_earn",
    task="binary",
    time="timestamp[us] of the story",
    feature_columns=(),
    n_classes=2,
    n_features=None,
    source_url="https://archive.ics.uci.edu/dataset/137/reuters+21578+text+categorization+collection",
    license="Reuters-21578, Distribution 1.0: free distribution for research purposes",
    default_chunking="7d",
    filename="reuters21578.parquet",
    description="Text in `text`; label 1 when 'earn' is among the story's topics.",
    loader=load_reuters,
    defaults=(("view", "earn"),),
))
register(DatasetSpec(
    name="movielens100k",
    task="binary",
    time="timestamp[s] of the rating",
    feature_columns=("age",),
    n_classes=2,
    n_features=43,
    source_url="https://grouplens.org/datasets/movielens/100k/",
    license="GroupLens: research use with acknowledgement; not for redistribution",
    default_chunking="7d",
    filename="movielens100k.parquet",
    description="Implicit click = rating >= 4; user_id / movie_id ids; age, gender, occupation, genres.",
    loader=load_movielens,
    categorical_columns=("user_id", "movie_id", "gender", "occupation"),
))
