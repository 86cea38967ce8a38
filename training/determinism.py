"""Bit-for-bit determinism: torch's deterministic algorithms for a block, and a comparison of
state dicts bit by bit.

Example
-------
>>> import torch
>>> with deterministic():
...     torch.are_deterministic_algorithms_enabled()
True
>>> state_equal({"w": torch.zeros(2)}, {"w": torch.tensor([0.0, -0.0])})  # -0.0 differs in its bits
['w']
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch

__all__ = ["deterministic", "state_equal"]


@contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Enforce torch's deterministic algorithms inside the block (restored afterwards).

    cuBLAS is deterministic only with a fixed workspace: unless the user set
    ``CUBLAS_WORKSPACE_CONFIG``, it is set to ``:4096:8`` for the process (torch's
    reproducibility notes ask for it; with some CUDA versions torch refuses CUDA matrix products
    under deterministic algorithms without it).
    """
    before = torch.are_deterministic_algorithms_enabled()
    bench = torch.backends.cudnn.benchmark
    try:
        if enabled:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.backends.cudnn.benchmark = bench


def state_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of tensors that differ (in keys, dtype, shape or any bit) between two state dicts."""
    names = sorted(set(a) | set(b))
    bad = []
    for n in names:
        x, y = a.get(n), b.get(n)
        if x is None or y is None or x.dtype != y.dtype or x.shape != y.shape:
            bad.append(n)
            continue
        xb = x.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        yb = y.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        if not torch.equal(xb, yb):
            bad.append(n)
    return bad
