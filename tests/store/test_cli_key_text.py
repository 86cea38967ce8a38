"""`erase` / `delete` read keys as ASCII integers only (Python's int() would read '0_9' as 9 and
'٣' as 3, so a mistyped key would erase another row), and a bad `--columns` is named as the flag."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main


@pytest.fixture
def store(tmp_path: Path) -> str:
    p = str(tmp_path / "s")
    Store.open(p, create=True).append(pa.table({"key": [3, 9, 10], "ts": [1, 2, 3], "x": [1.0, 2.0, 3.0]}))
    return p


@pytest.mark.parametrize("text", ["0_9", "1_0", "\u0663", "\uff19", "9\u00b2"])
def test_key_argument_of_other_digits_is_refused(store: str, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["erase", store, text, "--reason", "r"]) == 2
    assert "KEY=" in capsys.readouterr().err
    s = Store.open(store)
    assert s.version == 1 and s.as_of().count() == 3


def test_keys_file_line_of_other_digits_is_refused(store: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("3\n0_9\n", encoding="utf-8")
    assert main(["erase", store, "--keys-file", str(keys), "--reason", "r"]) == 2
    assert "--keys-file" in capsys.readouterr().err
    s = Store.open(store)
    assert s.version == 1 and s.as_of().count() == 3


def test_plain_keys_with_sign_and_blanks_still_work(store: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text(" 3 \n\n+9\n", encoding="utf-8")
    assert main(["erase", store, "--keys-file", str(keys), "--reason", "r"]) == 0
    assert sorted(Store.open(store).as_of().to_table(["key"]).column("key").to_pylist()) == [10]


@pytest.mark.parametrize("command", ["show", "export"])
@pytest.mark.parametrize("columns", ["nosuch", "key,key"])
def test_column_errors_name_the_flag(store: str, tmp_path: Path, command: str, columns: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, store] + ([str(tmp_path / "out.parquet")] if command == "export" else [])
    assert main([*argv, "--columns", columns]) == 2
    assert "--columns=" in capsys.readouterr().err
    assert not (tmp_path / "out.parquet").exists()


def test_keys_after_options_are_keys(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    # `erase STORE --reason R KEY...` as well as `erase STORE KEY... --reason R`
    assert main(["erase", store, "--reason", "r", "3"]) == 0
    assert main(["delete", store, "--missing", "ignore", "9", "99"]) == 0
    assert "1 keys not live, skipped" in capsys.readouterr().out
    assert main(["erase", store, "10", "--reason", "r", "--", "-5"]) == 2  # after '--' too: -5 was never stored
    assert "[-5]" in capsys.readouterr().err
    s = Store.open(store)
    assert s.version == 3 and s.as_of().keys().tolist() == [10]
    # other stray words are still refused, naming them, and nothing is written
    with pytest.raises(SystemExit):
        main(["delete", store, "--message", "m", "--bogus", "10"])
    assert "unrecognized arguments: --bogus 10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["show", store, "1", "2"])
    assert "unrecognized arguments: 2" in capsys.readouterr().err
    assert Store.open(store).version == 3
