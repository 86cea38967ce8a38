"""A training batch (a dict of tensors by column, plus ``key`` and ``weight``) and how one is
gathered from a cache entry held in host memory, by the loader and by its worker processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from training.cache import CacheEntry

__all__ = ["Batch", "gather_host"]

Batch = dict[str, Any]


def gather_host(
    entry: CacheEntry,
    keys: torch.Tensor,
    weights: torch.Tensor,
    host: dict[str, torch.Tensor],
    idx: np.ndarray,
    columns: Sequence[str],
    contiguous: bool,
) -> Batch:
    """A batch of rows ``idx`` of ``entry``: copied slices when ``contiguous`` (one memcpy per
    column: a caller that changes a batch in place must not change the cache, which later
    batches, loaders and processes read), else gathers."""
    batch: Batch = {}
    if contiguous:
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        batch["key"] = keys[lo:hi].clone()
        batch["weight"] = weights[lo:hi].clone()
        for n in columns:
            if n in host:
                batch[n] = host[n][lo:hi].clone()
    else:
        ti = torch.from_numpy(idx)
        batch["key"] = keys.index_select(0, ti)
        batch["weight"] = weights.index_select(0, ti)
        for n in columns:
            if n in host:
                batch[n] = host[n].index_select(0, ti)
    for n in columns:
        if n in entry.var:
            batch[n] = entry.var[n].rows(idx, text=entry.specs[n].kind == "string")
    return {n: batch[n] for n in ["key", "weight", *columns]}
