"""Each flag of the store commands changes what the command prints or writes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Five versions: three appends of four rows, a soft delete of keys 0 and 1, a delete of key 4."""
    p = str(tmp_path / "s")
    s = Store.open(p, create=True)
    for i in range(3):
        s.append(pa.table({"ts": [4 * i + j for j in range(4)], "x": [float(4 * i + j) for j in range(4)],
                           "label": [j % 2 for j in range(4)]}), message=f"batch {i}")
    s.delete(keys=[0, 1])
    s.delete(keys=[4])
    return p


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


def test_log_limit_prints_only_the_last_versions(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", store, "--json"]) == 0
    assert [r["version"] for r in json.loads(_out(capsys))] == [1, 2, 3, 4, 5]
    assert main(["log", store, "--json", "--limit", "2"]) == 0
    assert [r["version"] for r in json.loads(_out(capsys))] == [4, 5]
    assert main(["log", store, "--limit", "1"]) == 0
    out = _out(capsys)
    assert "batch 0" not in out and "batch 2" not in out and "delete" in out


def test_show_limit_bounds_the_rows_printed(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, "--json", "--limit", "3"]) == 0
    assert len(json.loads(_out(capsys))["rows"]) == 3
    assert main(["show", store, "--json", "--limit", "0"]) == 0
    assert json.loads(_out(capsys))["rows"] == []
    assert main(["show", store, "--limit", "2", "--columns", "key"]) == 0
    table = _out(capsys).split("columns: ", 1)[1].splitlines()[1:]
    keys = [line.strip() for line in table if line.strip().isdigit()]
    assert keys == ["2", "3"]


def test_show_limit_above_the_default_prints_that_many_rows(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    p = str(tmp_path / "wide")
    Store.open(p, create=True).append(pa.table({"ts": list(range(30)), "label": [0] * 30}))
    for flags in ([], ["--json"]):
        assert main(["show", p, "--columns", "key", "--limit", "25", *flags]) == 0
        out = _out(capsys)
        if flags:
            keys = [str(r["key"]) for r in json.loads(out)["rows"]]
        else:
            keys = [line.strip() for line in out.split("columns: ", 1)[1].splitlines()[1:] if line.strip().isdigit()]
        assert keys == [str(k) for k in range(25)], flags


def test_show_columns_selects_the_columns_printed(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, "--json", "--columns", "key,x"]) == 0
    rows = json.loads(_out(capsys))["rows"]
    assert rows and all(set(r) == {"key", "x"} for r in rows)


def test_show_filter_restricts_the_rows(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, "--json", "--columns", "key,label", "--filter", "label = 1"]) == 0
    rows = json.loads(_out(capsys))["rows"]
    assert [r["key"] for r in rows] == [3, 5, 7, 9, 11]


def test_show_version_reads_that_version(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, "2", "--json", "--columns", "key", "--limit", "100"]) == 0
    shown = json.loads(_out(capsys))
    assert shown["version"] == 2 and [r["key"] for r in shown["rows"]] == list(range(8))


@pytest.mark.parametrize("order", [["--json", "0"], ["--json", "--limit", "5", "2"], ["--limit", "5", "2", "--json"]],
                         ids=["json-then-0", "options-then-2", "2-between-options"])
def test_show_version_after_options_reads_that_version(store: str, order: list[str],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``show STORE --json 0``: the version may follow the options (argparse alone read ``0`` as
    an unrecognized argument), and ``0`` is the empty store before the first write."""
    assert main(["show", store, *order]) == 0
    shown = json.loads(_out(capsys))
    want = int(order[-1] if order[-1] != "--json" else order[-2])
    assert shown["version"] == want and shown["live_rows"] == 4 * want
    assert [r["key"] for r in shown["rows"]] == list(range(min(4 * want, 5)))


def test_diff_keys_bounds_the_keys_in_json(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", store, "1", "3", "--json", "--keys", "3"]) == 0
    d = json.loads(_out(capsys))
    assert d["inserted"] == 8 and d["inserted_keys"] == [4, 5, 6]
    assert main(["diff", store, "3", "5", "--json"]) == 0
    d = json.loads(_out(capsys))
    assert d["deleted"] == 3 and d["deleted_keys"] == []


def test_erase_missing_ignore_skips_keys_that_are_not_live(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    # key 99 never existed: refused by default, nothing erased
    assert main(["erase", store, "0", "99", "5", "--reason", "r"]) == 2
    assert Store.open(store).as_of().keys().tolist() == [2, 3, 5, 6, 7, 8, 9, 10, 11]
    capsys.readouterr()
    assert main(["erase", store, "0", "99", "5", "--reason", "r", "--missing", "ignore"]) == 0
    out = _out(capsys)
    assert "erased 2 keys" in out and "1 keys never stored or already erased, skipped" in out  # 0 and 5; 99
    assert Store.open(store).as_of().keys().tolist() == [2, 3, 6, 7, 8, 9, 10, 11]
    assert Store.open(store).as_of(3).keys().tolist() == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]


def test_erase_missing_ignore_with_nothing_left_writes_no_version(store: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["erase", store, "5", "--reason", "r"]) == 0
    capsys.readouterr()
    # 5 is already erased and 99 was never stored: nothing to erase, no new version
    assert main(["erase", store, "5", "99", "--reason", "r", "--missing", "ignore"]) == 0
    out = _out(capsys)
    assert "nothing to erase" in out and "version 6 unchanged" in out and "erased 0 keys" not in out
    assert Store.open(store).version == 6
    assert [r.op for r in Store.open(store).log()][-1] == "erase"


def test_vacuum_keep_versions_decides_what_is_purged(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    # with the last 3 versions kept, version 3 still reads keys 0 and 1 (deleted in version 4): nothing to purge
    assert main(["vacuum", store, "--keep-versions", "3"]) == 0
    assert "would purge 0 " in _out(capsys)
    # with only the latest kept, all three soft-deleted rows can go
    assert main(["vacuum", store, "--keep-versions", "1"]) == 0
    assert "would purge 3 " in _out(capsys)
    assert main(["vacuum", store, "--keep-versions", "2"]) == 0
    assert "would purge 2 " in _out(capsys)  # version 4 still reads key 4


def test_vacuum_apply_purges_only_with_the_flag(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vacuum", store, "--keep-versions", "1"]) == 0
    assert Store.open(store).as_of(3).unavailable().size == 0
    assert main(["vacuum", store, "--keep-versions", "1", "--apply"]) == 0
    assert Store.open(store).as_of(3).unavailable().tolist() == [0, 1, 4]


def test_tag_version_names_that_version(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", store, "old", "2"]) == 0
    latest = Store.open(store).version
    assert main(["tag", store, "now"]) == 0
    tags = Store.open(store).tags()
    assert tags["old"] == 2 and tags["now"] == latest
    assert main(["tag", store, "old", "--delete"]) == 0
    assert "old" not in Store.open(store).tags()


def test_erase_missing_help_names_the_keys_it_applies_to(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["erase", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "not live" not in text and "never stored" in text
