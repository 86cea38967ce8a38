"""What each rank of a distributed training sets up before it trains: where it opens the store
(its address, the storage options a command line gives as JSON, the opening itself) and the
process group's backend.

Example
-------
>>> from modyn_store import Store
>>> uri, options = store_address(Store.open("memory://addresses-example", create=True))
>>> uri.startswith("memory://") or uri.startswith("/"), options
(True, None)
>>> json_options('{"aws_region": "eu-west-1"}')
{'aws_region': 'eu-west-1'}
>>> group_backend(None, "cpu")
'gloo'
"""

from __future__ import annotations

import json
from typing import Any

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["BACKENDS", "group_backend", "json_options", "open_store", "store_address"]

#: the process-group backends torch knows (``torch.distributed.Backend``); a build has some of them
BACKENDS = ("gloo", "nccl", "mpi", "ucc", "xccl")


def store_address(store: Any) -> tuple[str, dict[str, Any] | None]:
    """Where other processes open ``store``: its folder (``memory://`` stores too) or URI."""
    loc = store._location
    return (loc.root if loc.is_local else loc.uri), (dict(loc.storage_options) or None)


def open_store(uri: str, storage_options: dict[str, Any] | None) -> Any:
    """The store at ``uri`` (opened in this process: a rank, a spawned worker)."""
    from modyn_store.core.store import Store

    return Store.open(uri, storage_options=storage_options)


def json_options(text: str | None) -> dict[str, Any] | None:
    """``--storage-options``: a JSON object (none if empty), or :class:`InvalidArgumentError` naming it."""
    try:
        options = json.loads(text) if text else None
    except ValueError:
        options = text
    if options is not None and not isinstance(options, dict):
        raise InvalidArgumentError("--storage-options", text, 'a JSON object, e.g. \'{"aws_region": "eu-west-1"}\'')
    return options


def group_backend(name: str | None, device: str) -> str:
    """``--backend``: ``name``, if this torch build has it (else :class:`InvalidArgumentError`
    naming the option and the backends it has); ``None``: nccl for a CUDA ``device``, else gloo."""
    import torch.distributed as dist

    if name is None:
        return "nccl" if device.startswith("cuda") else "gloo"
    have = [b for b in BACKENDS if dist.is_backend_available(b)]
    if name not in have:
        raise InvalidArgumentError("--backend", name, f"a backend this torch build has: {', '.join(have)}")
    return name
