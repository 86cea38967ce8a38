"""The data commands of the CLI (append, labels, export, import) and the habits of the store commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import build_parser, main


@pytest.fixture
def csv(tmp_path: Path) -> str:
    n = 300
    rng = np.random.default_rng(0)
    pcsv.write_csv(pa.table({"id": np.arange(n) + 10, "t": np.arange(n), "y": rng.choice([2, 7, 12], n),
                             "u": rng.standard_normal(n)}), tmp_path / "s.csv")
    return str(tmp_path / "s.csv")


def test_append_labels_export_import_round_trip(tmp_path: Path, csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    st, st2 = str(tmp_path / "st"), str(tmp_path / "st2")
    assert main(["append", st, csv, "--ts", "t", "--label", "y", "--key", "id"]) == 0
    assert "300 rows" in capsys.readouterr().out
    assert main(["labels", st, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"] == [{"code": 0, "label": 2}, {"code": 1, "label": 7},
                                                             {"code": 2, "label": 12}]
    out = str(tmp_path / "e.parquet")
    assert main(["export", st, out]) == 0
    exported = pq.read_table(out)
    assert sorted(set(exported.column("label").to_pylist())) == [2, 7, 12]  # original values
    capsys.readouterr()
    assert main(["show", st, "--columns", "key,label", "--limit", "3", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["rows"]
    assert all([2, 7, 12][r["label"]] == r["label_value"] for r in shown)
    assert main(["import", st2, out]) == 0
    a = Store.open(st).as_of().to_table(["key", "label", "features"])
    b = Store.open(st2).as_of().to_table(["key", "label", "features"])
    assert a.equals(b)


def test_export_of_a_version_without_live_rows_writes_the_columns(tmp_path: Path, csv: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every row deleted: the export is an empty file with the version's columns, not no file."""
    st, out = str(tmp_path / "st"), str(tmp_path / "empty.parquet")
    assert main(["append", st, csv, "--ts", "t", "--label", "y", "--key", "id"]) == 0
    Store.open(st).delete(where="key >= 0")
    assert main(["export", st, out]) == 0
    assert "0 rows" in capsys.readouterr().out
    exported = pq.read_table(out)
    assert exported.num_rows == 0 and exported.column_names == Store.open(st).schema.names
    assert exported.schema.field("label").type == pa.int64()  # decoded to the original label values


def test_bad_inputs_name_the_flag_and_write_nothing(tmp_path: Path, csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "nope"]) == 2
    assert "--ts: no column 'nope'" in capsys.readouterr().err
    assert main(["append", st, csv, "--ts", "t", "--key", "y", "--features", "u", "--label", "u"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --")
    assert not Path(st).exists()  # refused before the first write: no store made
    (tmp_path / "empty").mkdir()
    assert main(["import", str(tmp_path / "empty"), csv, "--label", "nope"]) == 2
    assert "--label" in capsys.readouterr().err
    assert not any((tmp_path / "empty").iterdir())  # an empty folder stays empty
    assert main(["append", st, csv, "--ts", "t"]) == 0
    capsys.readouterr()
    assert main(["erase", st, "abc", "--reason", "r"]) == 2
    assert "KEY='abc'" in capsys.readouterr().err
    assert Store.open(st).version == 1
    assert main(["log", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "create=True" not in err and "modyn-store append" in err


def test_a_storage_option_given_twice_is_refused_naming_it(tmp_path: Path, csv: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "t", "--storage-option", "aws_region=us-east-1",
                 "--storage-option", "timeout=5s", "--storage-option", "aws_region=eu-west-1"]) == 2
    err = capsys.readouterr().err
    assert "--storage-option aws_region='aws_region=eu-west-1'" in err and "aws_region=us-east-1 is already given" in err
    assert not Path(st).exists()  # refused before anything is written


def test_delete_by_keys_file_or_filter_and_bad_requests_write_nothing(tmp_path: Path, csv: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "st")
    assert main(["append", st, csv, "--ts", "t", "--label", "y", "--key", "id"]) == 0  # keys 10 .. 309
    capsys.readouterr()
    # a dry run counts and writes nothing; keys not live are named
    assert main(["delete", st, "10", "11", "5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete 2 live rows of version 1" in out and "1 keys are not live" in out and "[5]" in out
    assert main(["delete", st, "--where", "ts < 5", "--dry-run"]) == 0
    assert "would delete 5 live rows" in capsys.readouterr().out
    # a filter sees class codes: the dry run names the label values they stand for (code 2 is 12)
    twelves = pcsv.read_csv(csv).column("y").to_pylist().count(12)
    assert main(["delete", st, "--where", "label = 2", "--dry-run"]) == 0
    assert f"would delete {twelves} live rows of version 1; by label: 12 ({twelves}); nothing written" \
        in capsys.readouterr().out
    assert Store.open(st).version == 1
    # refused requests: typed errors naming the flag; the store is as it was
    for bad, flag in [(["10", "5"], "--missing ignore"), (["--where", "ts < 5) OR (1=1"], "--where"),
                      (["--where", "nope > 1"], "--where"), (["10", "--where", "ts < 5"], "--where"),
                      ([], "KEY"), (["x1"], "KEY")]:
        assert main(["delete", st, *bad]) == 2, bad
        assert flag in capsys.readouterr().err, bad
    assert Store.open(st).version == 1
    # by keys (a file too), skipping keys not live when asked, then by a filter
    (tmp_path / "k.txt").write_text("12\n13\n")
    assert main(["delete", st, "10", "11", "5", "--keys-file", str(tmp_path / "k.txt"), "--missing", "ignore"]) == 0
    assert "deleted 4 rows in version 2 (1 keys not live, skipped); 296 live rows" in capsys.readouterr().out
    assert main(["delete", st, "--where", "ts < 10", "--message", "retention"]) == 0
    assert "deleted 6 rows in version 3" in capsys.readouterr().out  # ts 0..3 went with keys 10..13
    store = Store.open(st)
    assert store.as_of().count() == 290 and store.as_of(1).count() == 300
    assert not store.as_of().contains(np.arange(10, 20)).any()
    assert store.log()[-1].message == "retention"


def test_habits_json_tags_times_and_filter_errors(tmp_path: Path, csv: str, capsys: pytest.CaptureFixture[str]) -> None:
    st = str(tmp_path / "st")
    main(["append", st, csv, "--ts", "t", "--label", "y"])
    main(["tag", st, "first", "1"])
    main(["erase", st, "5", "--reason", "subject request"])
    capsys.readouterr()
    assert main(["log", st, "--json"]) == 0
    log = json.loads(capsys.readouterr().out)
    assert log[0]["tags"] == "first" and log[-1]["details"]["reason"] == "subject request"
    assert main(["log", st]) == 0
    assert "reason: subject request" in capsys.readouterr().out
    assert main(["tags", st, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"first": 1}
    when = log[0]["time"]  # pastes back: the version committed within that second
    assert "+00:00" in when
    assert main(["show", st, when, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == max(r["version"] for r in log if r["time"] == when)
    assert main(["diff", st, "0", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inserted"] == 299  # the erased key is gone from every version
    assert main(["show", st, "--filter", "nope >"]) == 2
    err = capsys.readouterr().err
    assert "--filter" in err and ".rs:" not in err
    assert main(["compact", st]) == 0
    out = capsys.readouterr().out
    assert "bytes reclaimed" in out or "the store grew by" in out


def test_every_argument_has_help() -> None:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    missing = [f"{name} {a.dest}" for name, p in sub.choices.items() for a in p._actions
               if a.help is None and a.dest != "help"]
    assert not missing


@pytest.mark.s3
def test_append_on_s3_from_the_command_line(s3_store: tuple[str, dict[str, str]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import fsspec

    from modyn_store.core._location import fsspec_options

    uri, options = s3_store
    prefix = uri.rsplit("/", 1)[0]
    fs = fsspec.filesystem("s3", **fsspec_options("s3", options))
    with fs.open(f"{prefix}/in/s.parquet", "wb") as fh:
        pq.write_table(pa.table({"t": [1, 2, 3], "y": ["a", "b", "a"], "u": [0.1, 0.2, 0.3]}), fh)
    flags = [a for k, v in options.items() for a in ("--storage-option", f"{k}={v}")]
    assert main(["append", uri, f"{prefix}/in/s.parquet", "--ts", "t", "--label", "y", *flags]) == 0
    assert "3 rows" in capsys.readouterr().out
    store = Store.open(uri, storage_options=options)
    assert store.as_of().to_table(["label"]).column("label").to_pylist() == [0, 1, 0]
    assert main(["export", uri, str(tmp_path / "e.parquet"), *flags]) == 0
    assert pq.read_table(tmp_path / "e.parquet").column("label").to_pylist() == ["a", "b", "a"]
    assert main(["append", uri, f"{prefix}/in/s.parquet", "--storage-option", "nokey"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_append_skips_unlabelled_rows_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq.write_table(pa.table({"t": [1, 2, 3], "y": ["a", None, "b"], "u": [0.1, 0.2, 0.3]}), tmp_path / "s.parquet")
    st = str(tmp_path / "st")
    assert main(["append", st, str(tmp_path / "s.parquet"), "--ts", "t", "--label", "y"]) == 2
    err = capsys.readouterr().err
    assert "--label" in err and "--drop-unlabeled" in err and not Path(st).exists()
    assert main(["append", st, str(tmp_path / "s.parquet"), "--ts", "t", "--label", "y", "--drop-unlabeled"]) == 0
    assert "2 rows (1 rows without a label skipped)" in capsys.readouterr().out


def test_append_into_an_empty_folder_makes_the_store_there(tmp_path: Path, csv: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "made").mkdir()  # e.g. a mounted volume or `mkdir` first
    assert main(["append", str(tmp_path / "made"), csv]) == 0
    assert Store.open(str(tmp_path / "made")).version == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a store\n")
    assert main(["append", str(tmp_path / "other"), csv]) == 2  # a folder holding other files is not taken
    assert "expected a store, a new path or an empty folder" in capsys.readouterr().err
    assert "notes.txt" in {p.name for p in (tmp_path / "other").iterdir()}
    assert len(list((tmp_path / "other").iterdir())) == 1
    capsys.readouterr()


def test_a_refused_first_append_leaves_a_new_path_as_it_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # duplicate keys are found by the store, after the source passed its checks and the store was made;
    # the second file's duplicate lies in a later row group (rows already streamed into the store)
    pq.write_table(pa.table({"id": [1, 1], "t": [1, 2], "u": [0.1, 0.2]}), tmp_path / "dup.parquet")
    n = 3000
    pq.write_table(pa.table({"id": list(range(n)) + [0], "t": list(range(n + 1)), "u": [0.5] * (n + 1)}),
                   tmp_path / "late.parquet", row_group_size=1000)
    (tmp_path / "empty").mkdir()
    targets = [tmp_path / "new", tmp_path / "deep" / "er" / "new", tmp_path / "empty"]
    for target in targets:
        for name in ("dup.parquet", "late.parquet"):
            assert main(["append", str(target), str(tmp_path / name), "--ts", "t", "--key", "id"]) == 2
            assert "duplicate keys" in capsys.readouterr().err
    # nothing is left: no store, no folder it made (an existing empty folder stays, empty)
    assert not (tmp_path / "new").exists() and not (tmp_path / "deep").exists()
    assert list((tmp_path / "empty").iterdir()) == []
    # the path reads as a path never touched, and a correct append then makes the store
    assert main(["show", str(tmp_path / "new")]) == 2
    assert "not a modyn-store store" in capsys.readouterr().err
    pq.write_table(pa.table({"id": [1, 2], "t": [1, 2], "u": [0.1, 0.2]}), tmp_path / "ok.parquet")
    assert main(["append", str(tmp_path / "new"), str(tmp_path / "ok.parquet"), "--ts", "t", "--key", "id"]) == 0
    assert Store.open(str(tmp_path / "new")).version == 1


def test_a_writer_that_opened_the_store_before_it_was_given_back_refuses(tmp_path: Path) -> None:
    """Two writers race for a new path; the first gives it back after its first write failed:
    the second, which had opened the store already, refuses instead of writing into a folder
    that is no store."""
    from modyn_store.core._marker import discard_unused
    from modyn_store.core.errors import NotAStoreError

    path = str(tmp_path / "raced")
    first = Store.open(path, create=True)
    second = Store.open(path)
    assert discard_unused(first, remove_folder=False)
    with pytest.raises(NotAStoreError, match="no longer a store"):
        second.append(pa.table({"t": [1, 2]}))
    # no marker, no table: only the second writer's lock file, made when it took the lock
    assert {p.name for p in Path(path).iterdir()} <= {"_lock"}


def test_show_keeps_a_stored_label_value_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The decoded labels were written over the data's own ``label_value`` column (100, 200 shown as
    'a', 'b'); they go under a name no stored column has."""
    (tmp_path / "d.csv").write_text("t,x,lab,label_value\n1,0.5,a,100\n2,0.7,b,200\n")
    st = str(tmp_path / "st")
    assert main(["append", st, str(tmp_path / "d.csv"), "--ts", "t", "--label", "lab", "--features", "x"]) == 0
    capsys.readouterr()
    assert main(["show", st, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["label_value"], r["label_value_1"]) for r in rows] == [(100, "a"), (200, "b")]
    assert main(["show", st]) == 0
    table = capsys.readouterr().out.splitlines()
    head = table[2].split()
    assert head == ["key", "ts", "label", "label_value_1", "features", "x", "label_value"]
    assert table[4].split()[-1] == "100" and table[4].split()[3] == "a"


def test_progress_off_a_terminal_writes_the_last_line_once() -> None:
    import io

    from modyn_store.app._fmt import Progress

    out = io.StringIO()
    bar = Progress(3, "append", stream=out, every=3600.0)
    bar.update(1)  # off a terminal: a line every `every` seconds (none yet) and one at the end
    bar.update(2)
    bar.update(0)  # a count of rows dropped, none: the bar is not drawn again
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("append [") and "3/3" in lines[0]
