"""Version references on the command line, large limits, a closed output pipe and names the
file system refuses: a right answer or one ``error:`` line, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli import main

_RUN = "import sys; from modyn_store.app.cli import main; sys.exit(main())"


def _cli(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


@pytest.fixture
def store(tmp_path: Path) -> str:
    p = str(tmp_path / "s")
    s = Store.open(p, create=True)
    s.append(pa.table({"ts": [1, 2, 3], "x": [1.0, 2.0, 3.0]}))
    s.delete(keys=[0, 1])  # usually within the same second as the append
    return p


def test_a_time_from_log_names_its_own_version_within_one_second(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", store, "--json"]) == 0
    log = json.loads(capsys.readouterr().out)
    records = Store.open(store).log()
    assert [datetime.fromisoformat(r["time"]) for r in log] == [r.time for r in records]
    for row in log:
        assert main(["show", store, row["time"], "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["version"] == row["version"]


def test_a_time_to_the_second_still_covers_that_second(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    last = Store.open(store).log()[-1].time
    assert main(["show", store, last.isoformat(timespec="seconds"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2


@pytest.mark.parametrize("ref", ["²", "⁵", "1²"])
def test_non_ascii_digits_are_refused_not_a_crash(store: str, ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, ref]) == 2  # no version number, and no tag name either (a tag starts with a letter)
    assert capsys.readouterr().err.startswith(f"error: invalid VERSION={ref!r}: expected a version number, a tag name")


@pytest.mark.parametrize(("ref", "why"), [
    ("25:00", "'25:00' is neither a valid time (hour must be in 0..23) nor a tag name"),
    ("12:61:00", "'12:61:00' is neither a valid time (minute must be in 0..59) nor a tag name"),
    ("9:30", "'9:30' is neither a valid time"),
    ("12:00", "'12:00' is a time of day without its date: give the date too, e.g. 2024-01-02T12:00"),
    ("23:59:59Z", "'23:59:59Z' is a time of day without its date"),
    ("../x", "'../x' is none of these"),
    ("x/../y", "'x/../y' is none of these"),
    ("a b", "'a b' is none of these"),
    ("3.5", "'3.5' is none of these"),
    ("v" * 129, "a tag name has at most 128 characters, this text has 129"),
])
def test_a_reference_no_tag_can_spell_is_refused_as_a_bad_time_not_an_unknown_tag(
        store: str, tmp_path: Path, ref: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.parquet")
    for argv, named in ((["show", store, ref], "VERSION"), (["diff", store, "1", ref], "TO"),
                        (["tag", store, "t", ref], "VERSION"), (["export", store, out, "--version", ref], "--version")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: invalid {named}={ref!r}: expected a version number, a tag name"), err
        assert why in err and "unknown tag" not in err, err
    assert Store.open(store).tags() == {} and Store.open(store).version == 2 and not Path(out).exists()


def test_a_tag_name_is_still_looked_up(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, "nightly"]) == 2
    assert "unknown tag 'nightly'" in capsys.readouterr().err
    Store.open(store).tag("nightly", 1)
    assert main(["show", store, "nightly", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1


@pytest.mark.parametrize(("argv", "named"), [
    (["show", "{store}", "0001-01-01T00:00"], "VERSION='0001-01-01T00:00'"),
    (["diff", "{store}", "0", "0001-01-01T00:00:00"], "TO='0001-01-01T00:00:00'"),
    (["diff", "{store}", "0001-01-01T00", "1"], "FROM='0001-01-01T00'"),
])
def test_times_outside_the_calendar_are_refused_by_name(store: str, tmp_path: Path, argv: list[str],
                                                        named: str) -> None:
    # a local time of year 1 west of UTC falls before year 1 once converted
    env = {**__import__("os").environ, "TZ": "Etc/GMT+12"}
    res = _cli(*(a.format(store=store) for a in argv), cwd=tmp_path, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith(f"error: invalid {named}: expected an ISO time"), res.stderr


@pytest.mark.parametrize(("argv", "named"), [
    (["show", "{store}", "2024-01-02"], "VERSION='2024-01-02'"),
    (["show", "{store}", "2024-W01-2"], "VERSION='2024-W01-2'"),
    (["diff", "{store}", "2024-01-02", "1"], "FROM='2024-01-02'"),
    (["diff", "{store}", "1", "2024-01-02"], "TO='2024-01-02'"),
    (["tag", "{store}", "t", "2024-01-02"], "VERSION='2024-01-02'"),
    (["export", "{store}", "{out}", "--version", "2024-01-02"], "--version='2024-01-02'"),
])
def test_a_date_alone_is_refused_by_every_command_naming_the_formats(
        store: str, tmp_path: Path, argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.parquet")
    assert main([a.format(store=store, out=out) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid {named}: expected an ISO time with a time of day, e.g. "
                          "2024-01-02T00:00:00Z"), err
    assert "a date alone" in err
    assert Store.open(store).tags() == {} and not Path(out).exists()


@pytest.mark.parametrize(("argv", "named"), [
    (["show", "{store}", "2026-12-06T25:00"], "VERSION='2026-12-06T25:00'"),
    (["show", "{store}", "2024-02-30T10:00Z"], "VERSION='2024-02-30T10:00Z'"),
    (["diff", "{store}", "1", "2024-01-02T10:61"], "TO='2024-01-02T10:61'"),
    (["export", "{store}", "{out}", "--version", "2026-12-06T25:00"], "--version='2026-12-06T25:00'"),
])
def test_an_invalid_time_is_refused_as_neither_a_time_nor_a_tag(
        store: str, tmp_path: Path, argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out.parquet")
    assert main([a.format(store=store, out=out) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid {named}: expected a version number, a tag name or an ISO time"), err
    assert "neither a valid time" in err and "nor a tag name" in err and "unknown tag" not in err
    assert not Path(out).exists()


@pytest.mark.parametrize(("text", "offsets"), [
    ("2024-10-27T02:30", "+02:00 or +01:00"),   # Berlin's clock shows it twice (back to winter time)
    ("2024-03-31T02:30:00", "+01:00 or +02:00"),  # and never (on to summer time)
])
def test_a_local_time_a_daylight_saving_change_makes_ambiguous_is_refused(store: str, tmp_path: Path, text: str,
                                                                          offsets: str) -> None:
    env = {**__import__("os").environ, "TZ": "Europe/Berlin"}
    res = _cli("show", store, text, cwd=tmp_path, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith(f"error: invalid VERSION='{text}': expected a local time the clock shows once "
                                 f"({text} is at UTC offset {offsets} around a daylight-saving change)"), res.stderr
    res = _cli("show", store, text + offsets[:6], "--json", cwd=tmp_path, env=env)  # with its offset: read
    assert res.returncode == 2 and "no version was committed at or before" in res.stderr, res.stderr


def test_a_time_to_the_minute_or_hour_covers_that_minute_or_hour(store: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    last = Store.open(store).log()[-1].time
    for spec in ("minutes", "hours"):
        assert main(["show", store, last.isoformat(timespec=spec), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["version"] == 2


def test_a_limit_beyond_the_rows_shows_them_all(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", store, "1", "--limit", "99999999999999999999", "--json"]) == 0
    assert [r["key"] for r in json.loads(capsys.readouterr().out)["rows"]] == [0, 1, 2]


def test_vacuum_with_nothing_to_purge_says_so(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = Store.open(store).version
    assert main(["vacuum", store, "--apply", "--keep-versions", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"nothing to purge (version {before} unchanged)") and "None" not in out
    assert Store.open(store).version == before


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    path = str(tmp_path / "big")
    Store.open(path, create=True).append(pa.table({"ts": list(range(20_000)), "x": [0.5] * 20_000}))
    with subprocess.Popen([sys.executable, "-c", _RUN, "show", path, "--limit", "20000"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`: the output (about 1 MB) no longer fits the pipe
        err = proc.stderr.read().decode()
        status = proc.wait(timeout=300)
    assert status == 141, err
    assert first.startswith(b"store ") and err == ""


def test_a_name_too_long_for_the_file_system_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ts,x\n1,0.5\n")
    res = _cli("append", "s" * 300, str(tmp_path / "a.csv"), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().endswith("File name too long") and len(res.stderr.strip().splitlines()) == 1


def test_json_output_is_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nan")
    Store.open(path, create=True).append(pa.table({"ts": [1, 2, 3], "x": [float("nan"), float("inf"), 0.5]}))

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    assert main(["show", path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_constant=refuse)["rows"]
    assert [r["x"] for r in rows] == [None, None, 0.5]


def test_a_filter_on_a_label_value_says_labels_are_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.csv").write_text("ts,label,x\n1,ok,0.5\n2,bad,0.6\n")
    store = str(tmp_path / "s")
    assert main(["append", store, str(tmp_path / "a.csv")]) == 0
    capsys.readouterr()
    assert main(["show", store, "--filter", "label = 'ok'"]) == 2
    assert "labels are stored as class codes" in capsys.readouterr().err
    assert main(["show", store, "--filter", "x = 'ok'"]) == 2
    assert "class codes" not in capsys.readouterr().err
    for dry in ([], ["--dry-run"]):  # delete's --where says it the same way, and writes nothing
        assert main(["delete", store, "--where", "label = 'ok'", *dry]) == 2
        assert "labels are stored as class codes" in capsys.readouterr().err
    assert Store.open(store).version == 1


def test_tag_delete_with_a_version_is_refused_and_keeps_the_tag(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", store, "t", "1"]) == 0
    log = [r.version for r in Store.open(store).log()]
    assert main(["tag", store, "t", "2", "--delete"]) == 2
    assert "VERSION='2'" in capsys.readouterr().err
    assert Store.open(store).tags() == {"t": 1}
    assert [r.version for r in Store.open(store).log()] == log
