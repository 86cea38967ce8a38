"""Local DDP ranks: :func:`spawn` runs a function in N processes joined by a gloo process group
(tests, reproduction; :func:`training.distributed.spawn_training` trains with it)."""

from __future__ import annotations

import os
import pickle
import re
import socket
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from modyn_store.core.errors import InvalidArgumentError, ModynStoreError

__all__ = ["spawn"]


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
    except ModynStoreError as exc:
        # the store's typed error, kept for the caller (see spawn): torch reports it as text
        with open(_error_file(out, rank), "wb") as fh:
            pickle.dump(exc, fh)
        raise
    finally:
        dist.destroy_process_group()
    _leave(0)  # (an error above reaches torch's spawn wrapper, which reports it)


def _error_file(out: str, rank: int) -> str:
    return os.path.join(os.path.dirname(out), f"rank{rank}.error")


def _rank_error(out: str, report: str) -> BaseException | None:
    """The typed error the rank torch reports (``-- Process N terminated``) kept, if any: the
    file its own process wrote into this call's private temporary folder, just made."""
    found = re.search(r"-- Process (\d+) terminated", report)
    path = _error_file(out, int(found.group(1))) if found else ""
    if not path or not os.path.exists(path):
        return None
    with open(path, "rb") as fh:
        err = pickle.load(fh)  # noqa: S301 - written by this call's own rank process, not stored data
    return err if isinstance(err, ModynStoreError) else None


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
            typed = _rank_error(out, str(exc))
            if typed is None:
                raise
            raise typed from exc
        return torch.load(out, weights_only=True) if os.path.exists(out) else None
