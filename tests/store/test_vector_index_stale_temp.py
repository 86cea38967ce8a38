"""A vector index build killed with ``SIGKILL`` cannot remove its temporary folder; the next
build without ``uri`` sweeps the folders whose owner process on this host is gone, and never a
live process's folder, another host's, or one without an owner file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from modyn_store.core._tempowner import OWNER_FILE, owned_tempdir, sweep_stale
from modyn_store.core.vectors import VectorIndex

pytest.importorskip("lancedb")

_PREFIX = "modyn-vectors-"

# Builds a LanceDB index into a temporary folder, prints the folder and waits to be killed.
_BUILD_AND_WAIT = r"""
import sys, time
import numpy as np
from modyn_store.core.vectors import VectorIndex
rng = np.random.default_rng(0)
idx = VectorIndex.from_arrays(np.arange(300), rng.normal(size=(300, 8)), kind="ivf_pq")
print(idx._dir, flush=True)
time.sleep(600)
"""

# Makes an owned temporary folder, prints it and waits to be killed.
_OWN_AND_WAIT = r"""
import time
from modyn_store.core._tempowner import owned_tempdir
print(owned_tempdir("modyn-vectors-"), flush=True)
time.sleep(600)
"""


def _start(code: str, tmp: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    folder = proc.stdout.readline().strip()
    assert folder and Path(folder).parent == tmp, folder
    return proc, folder


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_later_build_sweeps_the_folder_of_a_killed_build(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed, stale = _start(_BUILD_AND_WAIT, tmp_path)
    live, alive_folder = _start(_OWN_AND_WAIT, tmp_path)
    try:
        _kill(killed)
        assert Path(stale, OWNER_FILE).exists() and len(os.listdir(stale)) > 1  # the killed build's table
        foreign = owned_tempdir(_PREFIX)  # a dead pid, but recorded on another host: not ours to judge
        owner = json.loads(Path(foreign, OWNER_FILE).read_text())
        Path(foreign, OWNER_FILE).write_text(json.dumps({**owner, "pid": killed.pid, "host": "elsewhere"}))
        unowned = tempfile.mkdtemp(prefix=_PREFIX)  # no owner file (one being made right now)

        rng = np.random.default_rng(1)
        idx = VectorIndex.from_arrays(np.arange(300), rng.normal(size=(300, 8)), kind="ivf_pq")

        assert not Path(stale).exists()
        left = {str(p) for p in tmp_path.iterdir()}
        assert idx._dir is not None
        assert left == {alive_folder, foreign, unowned, idx._dir}
        assert json.loads(Path(idx._dir, OWNER_FILE).read_text())["pid"] == os.getpid()
        idx.close()
    finally:
        _kill(live)
    assert sweep_stale(_PREFIX) == [alive_folder]  # its owner is gone now


def test_a_reused_pid_does_not_keep_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The owner file records the process's start time: another process under the same pid (here:
    this one, with another start time on record) does not keep the folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = owned_tempdir(_PREFIX)
    owner = json.loads(Path(folder, OWNER_FILE).read_text())
    assert sweep_stale(_PREFIX, str(tmp_path)) == []  # this process: alive
    if owner["start"] is None:
        pytest.skip("no /proc: process start times unknown")
    Path(folder, OWNER_FILE).write_text(json.dumps({**owner, "start": owner["start"] - 1}))
    assert sweep_stale(_PREFIX, str(tmp_path)) == [folder]
    assert not Path(folder).exists()


@pytest.mark.parametrize("other", [{"pid_ns": 1}, {"boot_id": "another-boot", "machine_id": "another-machine"},
                                   {"pid_ns": None}, {"boot_id": None}])
def test_a_folder_of_another_namespace_or_machine_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          other: dict[str, object]) -> None:
    """Containers sharing /tmp and the host name see each other's pids as absent, and machines
    sharing a folder with one host name have other boot ids: such a folder is not judged."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)  # a pid that no longer runs
    folder = owned_tempdir(_PREFIX)
    owner = json.loads(Path(folder, OWNER_FILE).read_text())
    if owner["boot_id"] is None or owner["pid_ns"] is None:
        pytest.skip("no /proc: boot ids and pid namespaces unknown")
    Path(folder, OWNER_FILE).write_text(json.dumps({**owner, "pid": gone.pid, "start": None}))
    assert sweep_stale(_PREFIX, str(tmp_path)) == [folder]  # the same machine and namespace: swept
    folder = owned_tempdir(_PREFIX)
    Path(folder, OWNER_FILE).write_text(json.dumps({**owner, "pid": gone.pid, "start": None, **other}))
    assert sweep_stale(_PREFIX, str(tmp_path)) == []
    assert Path(folder).exists()
