"""Bad command-line input gets one clean ``error:`` line and exit status 2, never a traceback,
and leaves the store as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store

_RUN = "import sys; from modyn_store.app.cli import main; sys.exit(main())"


def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, *argv], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def store(tmp_path: Path) -> str:
    p = str(tmp_path / "s")
    Store.open(p, create=True).append(pa.table({"ts": [1, 2, 3], "x": [1.0, 2.0, 3.0]}))
    (tmp_path / "afile").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "big.txt").write_text("1\n99999999999999999999\n")
    return p


CASES = [
    (["diff", "{store}", "0", "1", "--keys", "-1"], "--keys=-1"),
    (["diff", "{store}", "0", "1", "--keys", "-1", "--json"], "--keys=-1"),
    (["log", "{store}", "--limit", "-1"], "--limit=-1"),
    (["show", "{store}", "--limit", "-1"], "--limit=-1"),
    (["erase", "{store}", "99999999999999999999", "--reason", "r"], "KEY='99999999999999999999'"),
    (["erase", "{store}", "-99999999999999999999", "--reason", "r"], "KEY='-99999999999999999999'"),
    (["erase", "{store}", "1", "--reason", "r", "--keys-file", "/nonexistent"], "--keys-file='/nonexistent'"),
    (["erase", "{store}", "--reason", "r", "--keys-file", "{tmp}/adir"], "--keys-file="),
    (["erase", "{store}", "--reason", "r", "--keys-file", "{tmp}/binary.txt"], "--keys-file="),
    (["erase", "{store}", "--reason", "r", "--keys-file", "{tmp}/big.txt"], "--keys-file"),
    (["export", "{store}", "/nonexistent/x.parquet"], "OUT='/nonexistent/x.parquet'"),
    (["export", "{store}", "{tmp}/adir"], "OUT="),
    (["bench", "elec2", "--out", "{tmp}/afile"], "--out="),
    (["bench", "elec2", "--out", "{tmp}/bench", "--store", "{tmp}/afile/x"], "--store="),
    (["run", "elec2", "--pipeline", "no-retrain", "--store", "{tmp}/runs", "--out", "{tmp}/afile"], "--out="),
    (["demo", "--store", "{tmp}/afile", "--store-only"], "--store="),
    (["show", "{store}", "--columns", ""], "--columns=['']"),
    (["export", "{store}", "{tmp}/out.parquet", "--columns", ""], "--columns=['']"),
    (["show", "{store}", "25:00"], "VERSION='25:00'"),
    (["tag", "{store}", "t", "../x"], "VERSION='../x'"),
    (["report", "{store}"], "STORE="),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(a[:1] + a[2:]) for a, _ in CASES])
def test_bad_input_is_one_error_line(store: str, tmp_path: Path, argv: list[str], named: str) -> None:
    before = Store.open(store).version
    res = _cli(*(a.format(store=store, tmp=tmp_path) for a in argv), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid "), res.stderr
    assert named in lines[0]
    assert Store.open(store).version == before
    assert Store.open(store).as_of().keys().tolist() == [0, 1, 2]


def test_store_under_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    if not Path("/proc/self").exists():
        pytest.skip("needs /proc, where no folder can be created")
    (tmp_path / "a.csv").write_text("ts,x\n1,1.0\n")
    res = _cli("append", "/proc/modyn-store-test/s", str(tmp_path / "a.csv"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        "error: invalid STORE='/proc/modyn-store-test/s': expected a store folder that can be created "
        "(No such file or directory)"]


def test_export_out_error_names_the_reason(store: str, tmp_path: Path) -> None:
    res = _cli("export", store, "/nonexistent/x.parquet", cwd=tmp_path)
    assert res.stderr.strip() == ("error: invalid OUT='/nonexistent/x.parquet': expected a writable Parquet file "
                                  "path in an existing folder (No such file or directory)")


def test_non_negative_counts_still_work(store: str, tmp_path: Path) -> None:
    res = _cli("diff", store, "0", "1", "--keys", "2", cwd=tmp_path)
    assert res.returncode == 0 and "inserted: 0 1\n" in res.stdout
    res = _cli("diff", store, "0", "1", "--keys", "0", cwd=tmp_path)
    assert res.returncode == 0 and "inserted:" not in res.stdout
    keys = tmp_path / "keys.txt"
    keys.write_text("1\n\n2\n")
    res = _cli("erase", store, "--reason", "r", "--keys-file", str(keys), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert Store.open(store).as_of().keys().tolist() == [0]


def test_options_are_taken_only_as_spelled_in_full(store: str, tmp_path: Path) -> None:
    """``erase --keys 1`` is not ``--keys-file 1``: a file named ``1`` listing other keys stays unread."""
    (tmp_path / "1").write_text("0\n2\n")
    res = _cli("erase", store, "--keys", "1", "--reason", "r", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unrecognized arguments: --keys" in res.stderr
    res = _cli("delete", store, "0", "--dry", cwd=tmp_path)  # not --dry-run: nothing may be written
    assert res.returncode == 2 and "unrecognized arguments: --dry" in res.stderr
    assert Store.open(store).version == 1
    assert Store.open(store).as_of().keys().tolist() == [0, 1, 2]


@pytest.mark.parametrize("where", ["{tmp}/nothere", "{tmp}/afile", "{tmp}/adir", "{store}/samples.lance"])
@pytest.mark.parametrize("command", [["show"], ["log"], ["tags"], ["diff", "0", "1"], ["tag", "t"], ["compact"],
                                     ["vacuum"], ["erase", "1", "--reason", "r"], ["report"]])
def test_a_path_that_is_no_store_is_one_error_line(store: str, tmp_path: Path, where: str, command: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.cli.main import main

    path = where.format(tmp=tmp_path, store=store)
    assert main([command[0], path, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path!r} is not a modyn-store store (no _modyn_store.json); create one with " \
                  "`modyn-store append STORE FILE`\n"
    assert not Path(path, "_modyn_store.json").exists() and not Path(path, "_lock").exists()


@pytest.mark.parametrize("argv", [["show", "{store}", "--", "-1"], ["diff", "{store}", "--", "-1", "1"],
                                  ["tag", "{store}", "t", "--", "-1"], ["show", "{store}", "5"]])
def test_a_version_that_does_not_exist_is_named_with_the_valid_ones(store: str, argv: list[str],
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from modyn_store.app.cli.main import main

    assert main([a.format(store=store) for a in argv]) == 2
    assert capsys.readouterr().err.endswith("does not exist: valid versions are 0..1\n")
    assert Store.open(store).tags() == {} and Store.open(store).version == 1
