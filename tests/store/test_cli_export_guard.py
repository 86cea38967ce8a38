"""``modyn-store export`` writes one consistent state or nothing: an erasure committed while it
streams fails it, the file appears under OUT only when complete, existing files and the store's own
files are never replaced by accident, and a version vacuum purged gets advice a CLI user can follow."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import build_parser, main
from modyn_store.core import _stream
from modyn_store.core.snapshot import Snapshot

N = 4000
_RUN = "import sys; from modyn_store.app.cli import main; sys.exit(main())"


@pytest.fixture
def store(tmp_path: Path) -> str:
    p = str(tmp_path / "s")
    Store.open(p, create=True).append(pa.table({"ts": np.arange(N), "label": np.arange(N) % 2,
                                                "x": np.linspace(0.0, 1.0, N)}))
    return p


def _leftovers(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".partial"))


def _in_the_middle(monkeypatch: pytest.MonkeyPatch, action: Any) -> list[int]:
    """Make every ``Snapshot.to_batches`` stream 500-row batches and run ``action()`` right after
    a stream's first batch was handed out (deterministic: no timing). Returns the sizes of the
    batches handed out."""
    original = Snapshot.to_batches
    handed: list[int] = []

    def to_batches(self: Snapshot, columns: Any = None, filter: Any = None, **kw: Any) -> Iterator[pa.RecordBatch]:
        kw["batch_size"] = 500
        inner = original(self, columns, filter, **kw)

        def gen() -> Iterator[pa.RecordBatch]:
            for i, batch in enumerate(inner):
                handed.append(batch.num_rows)
                yield batch
                if i == 0:
                    action()

        return gen()

    monkeypatch.setattr(Snapshot, "to_batches", to_batches)
    monkeypatch.setattr(_stream, "ERASE_CHECK_S", 0.0)  # the stream sees the erasure at its next batch
    return handed


# -- 1. an erasure during the export ------------------------------------------------------------

def test_erasure_committed_mid_export_fails_and_writes_nothing(store: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    # keys both in the first batch (already written) and later (not yet read): without the check
    # the file holds the first ones and lacks the others, neither state of the store
    erased = np.array([10, 11, 12, 3000, 3001, 3002], np.int64)
    handed = _in_the_middle(monkeypatch, lambda: Store.open(store).erase(erased, reason="mid-export"))
    out = tmp_path / "e.parquet"
    rc = main(["export", store, str(out)])
    err = capsys.readouterr().err
    assert len(handed) > 1  # the erasure really committed while the stream ran
    assert Store.open(store).log()[-1].op == "erase"
    assert rc == 2, err
    assert "erasure committed while exporting" in err and "run the export again" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_erasure_mid_export_keeps_the_file_that_was_there(store: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.parquet"
    out.write_bytes(b"an earlier export")
    _in_the_middle(monkeypatch, lambda: Store.open(store).erase([3500], reason="mid-export"))
    assert main(["export", store, str(out), "--overwrite"]) == 2
    assert "erasure committed while exporting" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier export"
    assert _leftovers(tmp_path) == []


def test_export_after_the_erasure_is_one_consistent_state(store: str, tmp_path: Path) -> None:
    Store.open(store).erase([10, 3000], reason="before the export")
    out = tmp_path / "e.parquet"
    assert main(["export", store, str(out)]) == 0
    keys = pq.read_table(out, columns=["key"]).column("key").to_numpy()
    assert keys.size == N - 2 and not np.isin([10, 3000], keys).any()
    assert _leftovers(tmp_path) == []


def test_a_failed_export_leaves_no_partial_file(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Boom(Exception):
        pass

    def fail() -> None:
        raise Boom

    _in_the_middle(monkeypatch, fail)
    out = tmp_path / "e.parquet"
    with pytest.raises(Boom):
        main(["export", store, str(out)])
    assert not out.exists()
    assert _leftovers(tmp_path) == []
    out.write_bytes(b"kept")
    with pytest.raises(Boom):
        main(["export", store, str(out), "--overwrite"])
    assert out.read_bytes() == b"kept"
    assert _leftovers(tmp_path) == []


# -- 2. what OUT may be -------------------------------------------------------------------------

def test_out_in_the_store_is_refused_and_the_store_survives(store: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    marker = Path(store) / "_modyn_store.json"
    before = marker.read_bytes()
    (tmp_path / "link").symlink_to(store)
    for out in (str(marker), str(tmp_path / "link" / "_modyn_store.json"), str(tmp_path / "link" / "new.parquet"),
                store):
        for extra in ([], ["--overwrite"]):
            assert main(["export", store, out, *extra]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"error: invalid OUT={out!r}: expected a path outside the store's folder"), err
    assert marker.read_bytes() == before
    assert not (Path(store) / "new.parquet").exists()
    assert main(["log", store]) == 0
    assert Store.open(store).as_of().count() == N


def test_out_in_the_store_is_one_error_line(store: str, tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-c", _RUN, "export", store, f"{store}/_modyn_store.json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid OUT="), res.stderr
    assert Store.open(store).as_of().count() == N


def test_existing_out_needs_overwrite(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.parquet"
    out.write_bytes(b"precious")
    assert main(["export", store, str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid OUT={str(out)!r}") and "--overwrite" in err, err
    assert out.read_bytes() == b"precious"
    assert main(["export", store, str(out), "--overwrite"]) == 0
    assert pq.read_table(out).num_rows == N
    assert _leftovers(tmp_path) == []


def test_overwrite_flag_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "--help"])
    assert "--overwrite" in capsys.readouterr().out


# -- 3. a version vacuum purged -----------------------------------------------------------------

def test_export_of_a_vacuumed_version_gives_cli_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "v")
    s = Store.open(st, create=True)
    s.append(pa.table({"ts": [1, 2, 3], "x": [0.5, 0.6, 0.7]}))
    s.delete(keys=[0])
    s.vacuum(keep_versions=1, dry_run=False)
    assert Store.open(st).as_of(1).unavailable().tolist() == [0]
    out = tmp_path / "o.parquet"
    assert main(["export", st, str(out), "--version", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "on_unavailable" not in err and "'skip'" not in err
    assert "purged by vacuum" in err and "later version" in err
    assert not out.exists() and _leftovers(tmp_path) == []
    assert main(["export", st, str(out)]) == 0  # the latest version still exports
    assert pq.read_table(out).column("key").to_pylist() == [1, 2]


def test_an_out_named_for_another_format_is_refused(store: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """export writes Parquet: a name `import` would read as CSV or Arrow is refused, nothing written."""
    for name in ("out.csv", "out.TSV", "out.arrow", "out.feather"):
        capsys.readouterr()
        assert main(["export", store, str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert "OUT=" in err and ".parquet or .pq" in err, err
        assert not (tmp_path / name).exists()
    assert main(["export", store, str(tmp_path / "out.pq")]) == 0
    assert pq.read_table(tmp_path / "out.pq").num_rows == N
