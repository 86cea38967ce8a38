"""A kernel is compiled once per argument type; Numba types a read-only array (one that Arrow or
Lance lent) apart from a writable one. The selection kernel gets read-only views of every array,
so the pipeline warm-up's compilation covers the keys a store later lends, whichever kind of
array the warm-up saw (a second compilation used to land in the first timed selection: 10.7 s
of a training's 10.75 wall seconds on a fresh install)."""

from __future__ import annotations

import numpy as np

from engine._ranked import select_core
from engine.sample import UniformSampler


def _array_flags(signature: tuple[object, ...]) -> list[bool]:
    return [bool(t.mutable) for t in signature if hasattr(t, "mutable")]


def test_selection_kernel_compiles_one_signature_for_writable_and_read_only_keys() -> None:
    writable = np.arange(100, dtype=np.int64)
    read_only = np.arange(100, dtype=np.int64)
    read_only.flags.writeable = False
    results = []
    for keys in (writable, read_only):
        sampler = UniformSampler(5, seed=1)
        sampler.update(keys)
        results.append(sampler.result().tolist())
    assert results[0] == results[1]
    assert writable.flags.writeable  # the caller's array is left as it was
    signatures = select_core.signatures
    assert signatures
    for signature in signatures:
        assert not any(_array_flags(signature)), f"a writable array reached the kernel: {signature}"


def test_the_weight_check_compiles_one_signature() -> None:
    from engine.sample import _first_invalid_weight, weighted_sample

    w = np.ones(100)
    ro = np.ones(100)
    ro.flags.writeable = False
    for weights in (w, ro):
        weighted_sample(weights, 5, seed=1)
    for signature in _first_invalid_weight.signatures:
        assert not any(_array_flags(signature)), f"a writable array reached the kernel: {signature}"
