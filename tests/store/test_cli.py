"""The store commands of the CLI on a small store."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from modyn_store import Store
from modyn_store.app.cli.main import main


@pytest.fixture
def path(tmp_path: Path) -> str:
    p = str(tmp_path / "s")
    s = Store.open(p, create=True)
    s.append(pa.table({"ts": [1, 2, 3, 4], "x": [0.1, 0.2, 0.3, 0.4]}), message="first")
    s.delete(keys=[0])
    return p


def test_log_diff_show(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", path]) == 0
    out = capsys.readouterr().out
    assert "append" in out and "delete" in out and "first" in out
    assert main(["diff", path, "1", "2", "--keys", "5"]) == 0
    out = capsys.readouterr().out
    assert "0 inserted, 1 deleted" in out and "deleted:  0" in out
    assert main(["show", path, "1", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "live rows 4" in out and "x:double" in out


def test_show_version_0_names_the_empty_store_before_the_first_write(path: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", path, "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"store {path}  version 0 of 2 (the empty store before the first write)  live rows 0")
    assert "None" not in out and "(no rows)" in out
    assert main(["show", path, "0", "--json"]) == 0
    assert '"time": null' in capsys.readouterr().out  # JSON's own word for no value
    assert main(["show", path, "1"]) == 0
    assert re.search(r"version 1 of 2 \(\d{4}-\d\d-\d\dT[0-9:.]+[+-][0-9:]+\)", capsys.readouterr().out)


def test_tag_erase_vacuum_compact(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tag", path, "v1", "1"]) == 0
    assert "-> version 1" in capsys.readouterr().out
    assert main(["erase", path, "2", "--reason", "request"]) == 0
    assert "erased 1 keys" in capsys.readouterr().out
    assert main(["vacuum", path, "--keep-versions", "1"]) == 0
    assert "would purge 0" in capsys.readouterr().out  # the tag protects version 1
    assert main(["tag", path, "v1", "--delete"]) == 0
    assert main(["vacuum", path, "--keep-versions", "1", "--apply"]) == 0
    assert "purged (version" in capsys.readouterr().out
    assert main(["compact", path]) == 0
    assert Store.open(path).as_of().keys().tolist() == [1, 3]


def test_erase_names_the_trainings_fine_tuned_from_those_that_used_the_keys(
        path: str, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from modyn_store import TrainSet
    from modyn_store.core.trainings import Catalog

    catalog = Catalog(Store.open(path))
    for tid, parent, keys in (("p", None, [2]), ("c", "p", [3])):
        catalog.record_training(tid, TrainSet(keys=np.array(keys), weights=np.ones(1), version=1), parent_id=parent)
    assert main(["erase", path, "2", "--reason", "request"]) == 0
    out = capsys.readouterr().out
    assert "trainings that used erased keys: p\n" in out and "trainings fine-tuned from them: c\n" in out


def test_errors_exit_2(path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", path, "99"]) == 2
    assert "error: version 99 does not exist" in capsys.readouterr().err
    assert main(["erase", path, "77", "--reason", "x"]) == 2
    assert main(["log", path + "-missing"]) == 2


def _size_change(out: str) -> tuple[int, int, str]:
    m = re.search(r"; (?:([\d,]+) bytes reclaimed|the store grew by ([\d,]+) bytes) \(([\d,]+) -> ([\d,]+)\)", out)
    assert m, out
    before, after = (int(g.replace(",", "")) for g in m.group(3, 4))
    shown = m.group(1) or m.group(2)
    return before, after, ("-" if m.group(1) else "+") + shown.replace(",", "")


@pytest.mark.parametrize("command", [["erase", "2", "--reason", "r"], ["compact"],
                                     ["vacuum", "--keep-versions", "1", "--apply"]])
def test_size_change_is_the_true_one(path: str, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A store that grew is not '0 bytes reclaimed': the figure is the true change."""
    assert main([command[0], path, *command[1:]]) == 0
    before, after, change = _size_change(capsys.readouterr().out)
    assert int(change) == after - before


def test_size_change_wording() -> None:
    from modyn_store.app.cli.main import _reclaimed

    assert _reclaimed(5_000, 1_000) == "; 4,000 bytes reclaimed (5,000 -> 1,000)"
    assert _reclaimed(1_000, 3_500) == "; the store grew by 2,500 bytes (1,000 -> 3,500)"
    assert _reclaimed(None, 3) == ""


def test_vacuum_names_the_trainings_it_leaves_unreproducible(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from modyn_store.core.errors import DataUnavailableError
    from modyn_store.core.trainings import Catalog
    from modyn_store.core.trainset import TrainSet

    p = str(tmp_path / "s")
    s = Store.open(p, create=True)
    s.append(pa.table({"ts": [1, 2, 3, 4]}))
    cat = Catalog(s)
    cat.record_training("uses-0", TrainSet.uniform(np.array([0, 1]), version=1), seed=0)
    cat.record_training("uses-3", TrainSet.uniform(np.array([3]), version=1), seed=0)
    s.delete(keys=[0, 2])
    report = s.vacuum(keep_versions=1)
    assert report.keys.tolist() == [0, 2] and report.trainings == ("uses-0",)
    assert main(["vacuum", p, "--keep-versions", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 recorded trainings would lose rows" in out and "uses-0" in out and "uses-3" not in out
    assert main(["tag", p, "t1", "1"]) == 0  # keeps every row version 1 needs
    assert s.vacuum(keep_versions=1).trainings == ()
    assert main(["tag", p, "t1", "--delete"]) == 0
    capsys.readouterr()
    applied = s.vacuum(keep_versions=1, dry_run=False)
    assert applied.trainings == ("uses-0",) and applied.version == s.version
    with pytest.raises(DataUnavailableError):
        s.as_of(1).take(cat.train_set("uses-0").keys, ["ts"])
    assert s.as_of(1).take(cat.train_set("uses-3").keys, ["ts"]).column("ts").to_pylist() == [4]
