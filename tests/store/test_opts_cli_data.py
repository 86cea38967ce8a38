"""Each flag of append, import and export changes what lands in the store or the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main


@pytest.fixture
def csv(tmp_path: Path) -> str:
    """Rows whose event time runs against the row order, with a key column, string labels and three numbers."""
    n = 20
    pcsv.write_csv(pa.table({"id": np.arange(n) * 3 + 100, "t": np.arange(n)[::-1] * 10,
                             "y": ["b" if i % 3 else "a" for i in range(n)],
                             "u": np.arange(n, dtype=np.float64), "v": np.arange(n, dtype=np.float64) * 2,
                             "w": np.ones(n)}), tmp_path / "s.csv")
    return str(tmp_path / "s.csv")


def _rows(store: str, version: int | None = None) -> pa.Table:
    return Store.open(store).as_of(version).to_table(["key", "ts", "label", "features"]).sort_by("key")


def test_append_mapping_flags_pick_the_columns(tmp_path: Path, csv: str) -> None:
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "t", "--label", "y", "--key", "id", "--features", "v,u"]) == 0
    t = _rows(st)
    assert t.column("key").to_pylist() == [100 + 3 * i for i in range(20)]
    assert t.column("ts").to_pylist() == [10 * (19 - i) for i in range(20)]
    assert t.column("label").to_pylist() == [1 if i % 3 else 0 for i in range(20)]  # codes of "a", "b"
    feats = np.array(t.column("features").to_pylist())
    assert feats.shape == (20, 2)
    assert feats[:, 0].tolist() == [2.0 * i for i in range(20)] and feats[:, 1].tolist() == [float(i) for i in range(20)]


def test_one_column_may_be_both_the_key_and_the_event_time(tmp_path: Path, csv: str) -> None:
    """A sequence number orders the rows across appends and keys them: both roles take its values,
    and a repeated one is still refused as a key."""
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "id", "--key", "id", "--label", "y", "--features", "u"]) == 0
    t = _rows(st)
    assert t.column("key").to_pylist() == t.column("ts").to_pylist() == [100 + 3 * i for i in range(20)]
    assert "id" not in Store.open(st).schema.names
    assert main(["append", st, csv, "--ts", "id", "--key", "id", "--label", "y", "--features", "u"]) == 2
    assert Store.open(st).version == 1


def test_append_without_mapping_flags_uses_the_defaults(tmp_path: Path, csv: str) -> None:
    """The contrast to the test above: without --key the keys are assigned, without --features every
    numeric column is packed."""
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "t", "--label", "y"]) == 0
    t = _rows(st)
    assert t.column("key").to_pylist() != [100 + 3 * i for i in range(20)]
    assert np.array(t.column("features").to_pylist()).shape[1] != 2


def test_append_message_goes_into_the_log(tmp_path: Path, csv: str) -> None:
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "t", "--label", "y", "--message", "nightly batch 7"]) == 0
    assert Store.open(st).log()[-1].message == "nightly batch 7"
    out = str(tmp_path / "e.parquet")
    assert main(["export", st, out]) == 0
    st2 = str(tmp_path / "st2")
    assert main(["import", st2, out, "--message", "restored from e.parquet"]) == 0
    assert Store.open(st2).log()[-1].message == "restored from e.parquet"


def test_append_format_reads_a_file_whose_suffix_does_not_tell(tmp_path: Path, csv: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "rows.dat"
    odd.write_bytes(Path(csv).read_bytes())
    st = str(tmp_path / "st")
    assert main(["append", st, str(odd), "--ts", "t", "--label", "y", "--format", "csv"]) == 0
    assert Store.open(st).as_of().count() == 20
    pq.write_table(pa.table({"t": [1, 2], "y": ["a", "b"], "u": [0.5, 0.25], "v": [1.0, 2.0], "w": [1.0, 1.0]}), tmp_path / "p.dat")
    st2 = str(tmp_path / "st2")
    assert main(["append", st2, str(tmp_path / "p.dat"), "--ts", "t", "--label", "y", "--format", "parquet"]) == 0
    assert Store.open(st2).as_of().count() == 2


def test_export_version_and_columns(tmp_path: Path, csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "t", "--label", "y", "--key", "id"]) == 0
    first = Store.open(st).version
    Store.open(st).delete(keys=[100, 103])
    out = str(tmp_path / "e.parquet")
    assert main(["export", st, out, "--version", str(first), "--columns", "key,label"]) == 0
    e = pq.read_table(out)
    assert e.column_names == ["key", "label"]
    assert sorted(e.column("key").to_pylist()) == [100 + 3 * i for i in range(20)]  # the deleted keys too
    assert sorted(set(e.column("label").to_pylist())) == ["a", "b"]
    assert main(["export", st, out, "--overwrite"]) == 0
    e = pq.read_table(out)
    assert e.num_rows == 18 and "features" in e.column_names
