"""Temporary folders that name their owner process, and a sweep of the ones whose owner is gone.

A process killed with ``SIGKILL`` runs no cleanup, so a temporary folder it made would stay
forever. :func:`owned_tempdir` writes an owner file (:data:`OWNER_FILE`) into each folder it
makes: the pid, the host name, the machine id, the pid namespace, the boot id and the process's
start time. :func:`sweep_stale` removes a folder of the given prefix only when its owner file
says it was made on this machine, in this pid namespace, by a process that is gone: the pid is not running, is a zombie, or now belongs to a process that
started at another time, or the machine has rebooted since. A folder of a live process, of
another host, of another user, or without a readable owner file (one being made right now) is
never touched, nor one made on another machine or in another pid namespace (containers sharing
the folder), or by a release that recorded neither. The owner file is removed last, so a sweep that is itself killed is resumed by
the next one.

Example
-------
>>> import os
>>> folder = owned_tempdir("modyn-doc-")
>>> sorted(os.listdir(folder)) == [OWNER_FILE]
True
>>> sweep_stale("modyn-doc-")  # the owner (this process) is alive: kept
[]
>>> import shutil; shutil.rmtree(folder)
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from typing import Any

from modyn_store.core._trees import remove_tree

__all__ = ["OWNER_FILE", "owned_tempdir", "sweep_stale"]

#: the owner file in each folder made by :func:`owned_tempdir`
OWNER_FILE = ".modyn-owner.json"


def _read_id(path: str) -> str | None:
    """The id a system file holds (its stripped text), ``None`` where unknown or unreadable."""
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _boot_id() -> str | None:
    """This boot's id (Linux), ``None`` where unknown."""
    return _read_id("/proc/sys/kernel/random/boot_id")


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks since boot)`` of ``pid`` from ``/proc`` (Linux),
    ``None`` where ``/proc`` does not list it or cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces
    return fields[0], int(fields[19])


def _machine_id() -> str | None:
    """This machine's id (``/etc/machine-id``), ``None`` where unknown."""
    return _read_id("/etc/machine-id")


def _pid_namespace() -> int | None:
    """The inode of this process's pid namespace (Linux): two containers sharing a temporary
    folder and a host name see each other's pids as absent, so only a folder made in this pid
    namespace can be judged."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _identity(pid: int) -> dict[str, Any]:
    stat = _proc_stat(pid)
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "machine_id": _machine_id(),
            "pid_ns": _pid_namespace(), "start": None if stat is None else stat[1]}


def owned_tempdir(prefix: str) -> str:
    """A new temporary folder (``tempfile.mkdtemp(prefix=prefix)``) holding the owner file of
    this process; the file is written whole (renamed into place) before this returns."""
    folder = tempfile.mkdtemp(prefix=prefix)
    tmp = os.path.join(folder, OWNER_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(_identity(os.getpid()), fh)
    os.replace(tmp, os.path.join(folder, OWNER_FILE))
    return folder


def _owner_gone(owner: dict[str, Any]) -> bool:
    """Whether the process an owner file names (on this host) is no longer running."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # not ours to judge
    # a boot id is random per boot: the same one means this machine since that boot. Another
    # machine sharing the folder (a network file system, one host name) has another, and so has
    # this machine after a reboot: only a known machine id tells them apart (else: kept)
    boot = _boot_id()
    if boot is None or owner.get("boot_id") is None:
        return False
    if owner["boot_id"] != boot:
        machine = _machine_id()
        return machine is not None and owner.get("machine_id") == machine  # made before a reboot
    # another pid namespace (containers sharing /tmp and the host) sees other pids: kept
    namespace = _pid_namespace()
    if namespace is None or owner.get("pid_ns") != namespace:
        return False
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        if state in ("Z", "X"):  # killed, not yet reaped: gone
            return True
        return owner.get("start") is not None and start != owner["start"]  # the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def _remove(folder: str) -> None:
    """Remove ``folder``, its owner file last (a removal cut short is found again); entries
    a concurrent sweep removed meanwhile are skipped."""
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return
    for entry in entries:
        if entry == OWNER_FILE:
            continue
        path = os.path.join(folder, entry)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                remove_tree(path)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass  # removed by a concurrent sweep
    for path, remove in ((os.path.join(folder, OWNER_FILE), os.unlink), (folder, os.rmdir)):
        try:
            remove(path)
        except FileNotFoundError:
            pass  # removed by a concurrent sweep


def sweep_stale(prefix: str, root: str | None = None) -> list[str]:
    """Remove the folders ``root/prefix*`` (default: the temporary folder) that
    :func:`owned_tempdir` made for a process of this host and user that is gone; the removed
    folders, sorted."""
    root = tempfile.gettempdir() if root is None else root
    host, uid = socket.gethostname(), os.getuid() if hasattr(os, "getuid") else None
    removed = []
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith(prefix))
    except FileNotFoundError:
        return []
    for name in names:
        folder = os.path.join(root, name)
        try:
            st = os.lstat(folder)
            with open(os.path.join(folder, OWNER_FILE), encoding="utf-8") as fh:
                owner = json.load(fh)
        except (OSError, ValueError):  # not a folder, no owner file yet, or not ours to read
            continue
        if not os.path.isdir(folder) or os.path.islink(folder) or (uid is not None and st.st_uid != uid):
            continue
        if not isinstance(owner, dict) or owner.get("host") != host or not _owner_gone(owner):
            continue
        _remove(folder)
        removed.append(folder)
    return removed
