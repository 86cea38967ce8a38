"""``source.missing``: what a missing feature value of your own data becomes (0, a skipped row, an error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from modyn_store import Store
from modyn_store.app.datasets.columns import ColumnMap
from modyn_store.app.datasets.user import append_stream
from modyn_store.app.pipeline import parse_pipeline
from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.app.pipeline.source import load_source


def _csv(tmp_path: Path) -> str:
    """Daily readings: pressure (around 1015 hPa) missing in rows 3 and 7, temperature NaN in row 5."""
    n = 12
    pressure = [None if i in (3, 7) else 1010.0 + i for i in range(n)]
    temp = [float("nan") if i == 5 else 20.0 + i for i in range(n)]
    path = tmp_path / "weather.csv"
    pcsv.write_csv(pa.table({"day": np.arange(n), "pressure": pa.array(pressure, pa.float64()), "temp": temp,
                             "rain": ["no", "yes"] * (n // 2)}), path)
    return str(path)


def _source(path: str, **extra: Any) -> Any:
    cfg = parse_pipeline({"name": "m", "source": {"path": path, "ts": "day", "label": "rain",
                                                  "features": ["pressure", "temp"], **extra},
                          "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100}})
    return cfg.source


def test_missing_features_become_zero_by_default(tmp_path: Path) -> None:
    t = load_source(_source(_csv(tmp_path))).sort_by("ts")
    f = np.array(t.column("features").to_pylist())
    assert t.num_rows == 12 and f[3, 0] == 0.0 and f[7, 0] == 0.0 and f[5, 1] == 0.0
    assert f[4].tolist() == [1014.0, 24.0]


def test_drop_row_skips_the_rows_with_a_missing_feature(tmp_path: Path) -> None:
    t = load_source(_source(_csv(tmp_path), missing="drop_row")).sort_by("ts")
    assert t.column("ts").to_pylist() == [i for i in range(12) if i not in (3, 5, 7)]
    f = np.array(t.column("features").to_pylist())
    assert f[:, 0].min() == 1010.0 and np.isfinite(f).all()


def test_error_refuses_a_missing_feature_naming_the_column_and_row(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError, match=r"source\.missing.*'pressure'.*at row 3\b"):
        load_source(_source(_csv(tmp_path), missing="error"))


def test_an_unknown_missing_choice_is_refused_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError, match=r"source\.missing.*\['zero', 'drop_row', 'error'\].*'mean'"):
        _source(_csv(tmp_path), missing="mean")


def test_the_default_is_left_out_of_the_recorded_config(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    base = parse_pipeline({"name": "m", "source": {"path": path, "ts": "day", "label": "rain"},
                           "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100}})
    same = parse_pipeline({"name": "m", "source": {"path": path, "ts": "day", "label": "rain", "missing": "zero"},
                           "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100}})
    other = parse_pipeline({"name": "m", "source": {"path": path, "ts": "day", "label": "rain", "missing": "drop_row"},
                            "model": {"name": "logreg"}, "trigger": {"name": "data_amount", "every": 100}})
    assert "missing" not in base.to_dict()["source"] and same.to_dict() == base.to_dict()
    assert other.to_dict()["source"]["missing"] == "drop_row"


def test_append_drops_rows_with_missing_list_values_and_keeps_the_store_on_error(tmp_path: Path) -> None:
    emb = pa.array([[1.0, 2.0], None, [float("nan"), 1.0], [3.0, 4.0]], pa.list_(pa.float64(), 2))
    data = pa.table({"t": [0, 1, 2, 3], "emb": emb, "y": ["a", "b", "a", "b"]})
    st = str(tmp_path / "st")
    append_stream(Store.open(st, create=True), data, ColumnMap(ts="t", label="y", features=("emb",), missing="drop_row"))
    t = Store.open(st).as_of().to_table(["ts", "features"]).sort_by("ts")
    assert t.column("ts").to_pylist() == [0, 3] and t.column("features").to_pylist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(Exception, match=r"missing.*'emb'.*at row 1\b"):
        append_stream(Store.open(st), data, ColumnMap(ts="t", label="y", features=("emb",), missing="error"))
    assert Store.open(st).version == 1


def test_append_cli_missing_drop_row_counts_the_skipped_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.cli.main import main

    path = _csv(tmp_path)
    st = str(tmp_path / "st")
    assert main(["append", st, path, "--ts", "day", "--label", "rain", "--features", "pressure,temp",
                 "--missing", "drop_row"]) == 0
    assert "9 rows (3 rows with a missing feature value skipped)" in capsys.readouterr().out
    assert Store.open(st).as_of().count() == 9
