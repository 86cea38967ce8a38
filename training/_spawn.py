"""Local DDP ranks: :func:`spawn` runs a function in N processes joined by a gloo process group
(tests, reproduction; :func:`training.distributed.spawn_training` trains with it)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["rank_error", "spawn"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _leave(code: int) -> None:
    """End a rank's process once its work is written: streams flushed, then ``os._exit``.

    A rank that ends through interpreter finalization may abort there ("terminate called
    without an active exception", SIGABRT) while threads of the process group or the libraries
    it used are torn down, turning a finished training into a failed one; nothing is left to
    finalize that the rank's results depend on."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _spawned(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...], out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        result = fn(*args)
        if rank == 0 and result is not None:
            torch.save(result, out)
        # rank 0 hosts the group's TCP store: no rank may leave while another still uses it
        # (ranks other than 0 return after polling the store for rank 0's record)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    _leave(0)  # (an error above reaches torch's spawn wrapper, which reports it)


def spawn(fn: Callable[..., Any], world_size: int, *args: Any) -> Any:
    """Run ``fn(*args)`` in ``world_size`` local processes joined by a gloo process group.

    ``fn`` must be importable (a module-level function); rank 0's return value, which must
    be tensors, dicts/lists of them or plain numbers and strings, comes back (saved with
    ``torch.save`` and loaded with ``weights_only=True``).
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise InvalidArgumentError("world_size", world_size, "an integer >= 1")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="modyn-ddp-") as tmp:
        out = os.path.join(tmp, "rank0.pt")
        try:
            mp.start_processes(
                _spawned, args=(world_size, _free_port(), fn, args, out), nprocs=world_size, join=True,
                start_method="spawn",
            )
        except mp.ProcessRaisedException as exc:
            typed = rank_error(str(exc))
            if typed is None:
                raise
            raise typed from exc
        return torch.load(out, weights_only=True) if os.path.exists(out) else None


#: the modules whose errors a rank's failure is raised as again in the caller
_ERROR_MODULES = ("modyn_store.core.errors", "training.errors", "engine.errors")


def rank_error(report: str) -> Exception | None:
    r"""The store's typed error a rank raised, from torch's report of it (its traceback's last
    line, ``module.Class: message``), for errors made from their message alone (a
    ``ConflictError``, a ``CorruptionError``); ``None`` for anything else (the report stands).

    >>> type(rank_error("Traceback ...\nmodyn_store.core.errors.ConflictError: held by another")).__name__
    'ConflictError'
    >>> rank_error("Traceback ...\nValueError: no") is None
    True
    """
    import importlib

    from modyn_store.core.errors import ModynStoreError

    last = next((line for line in reversed(report.strip().splitlines()) if line.strip()), "")
    where, _, message = last.partition(": ")
    module, _, name = where.rpartition(".")
    if module not in _ERROR_MODULES:
        return None
    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModynStoreError)):
        return None
    try:
        made = cls(message)
    except TypeError:
        return None
    return made if str(made) == message else None
