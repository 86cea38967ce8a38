"""``modyn-store run FILE`` on a file that is no pipeline definition names the file and shows at
most a short excerpt of it, never the whole content."""

from __future__ import annotations

from pathlib import Path

import pytest

from modyn_store.app.cli.main import main
from modyn_store.app.pipeline.checks import _Ctx, _mapping, _typed
from modyn_store.app.pipeline.errors import PipelineConfigError

SHOWN_CHARS = 80  # the most characters of a value an error shows


def _run_error(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["run", str(path)]) == 2
    return capsys.readouterr().err


def test_a_long_text_file_is_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [f"user{i}:x:{i}:{i}:secret-{i}:/home/user{i}:/bin/sh" for i in range(200)]
    f = tmp_path / "passwd"
    f.write_text("\n".join(lines) + "\n")
    err = _run_error(f, capsys)
    assert str(f) in err and "expected a pipeline definition" in err and "<document>" in err
    assert "user0:x:0" in err and "secret-199" not in err  # an excerpt only
    assert "characters)" in err and len(err) < SHOWN_CHARS + 300


def test_a_binary_file_and_a_folder_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "blob.bin"
    f.write_bytes(b"\xff\xfe\x00\x81" * 100)
    err = _run_error(f, capsys)
    assert "not a UTF-8 text file" in err and str(f) in err and "Traceback" not in err
    err = _run_error(tmp_path, capsys)
    assert "cannot be read as a pipeline" in err and str(tmp_path) in err


def test_a_long_value_is_cut() -> None:
    ctx = _Ctx(None, ("grid", 0))
    with pytest.raises(PipelineConfigError) as err:
        _mapping(ctx, ("model",), "m" * 5000, None)
    assert "grid[0].model" in str(err.value) and "(5,002 characters)" in str(err.value)
    assert len(str(err.value)) < SHOWN_CHARS + 100
    with pytest.raises(PipelineConfigError) as err:
        _typed(ctx, ("name",), ["x" * 5000], "str")
    assert "x" * (SHOWN_CHARS + 1) not in str(err.value)
