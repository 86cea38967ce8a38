"""Pure NumPy/Numba kernels of modyn-store: arrays in, arrays out; no I/O.

Modules, one concern each:

* :mod:`engine.select`: ``top_k`` / ``bottom_k`` and the streaming ``TopK``;
* :mod:`engine.sample`: seeded uniform, weighted (Efraimidis-Spirakis) and reservoir sampling;
* :mod:`engine.quota`: class/group-balanced quotas (``allocate_quotas``, ``balanced_select``, and
  ``group_counts`` + ``select_quotas`` to select over parts and merge exactly);
* :mod:`engine.sets`: sorted int64 key sets and latest value per key as of a version;
* :mod:`engine.scores`: loss, uncertainty, EL2N and RHO-LOSS scores from logits;
* :mod:`engine.score_registry`: every score name, its definition, kernel and readers;
* :mod:`engine.drift`: MMD (permutation test, linear, random features), KS, Wasserstein-1;
* :mod:`engine.kcenter`: greedy k-center on embeddings.

Every public function validates its input and raises :class:`EngineInputError` (a
``ValueError``) naming the bad argument. Kernels compile on first use and are cached on disk
(``cache=True``); importing the package compiles nothing and changes no Numba setting, and
its names load their module (and Numba) on first use. Importing it deletes those caches when any
source file of the package changed since they were written (:mod:`engine._jit`): Numba itself
checks only the file that defines a kernel, not the modules whose functions it inlines.

Example
-------
>>> import numpy as np
>>> import engine
>>> engine.top_k(np.array([0.2, 0.9, np.nan, 0.5]), 2).tolist()
[1, 3]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine._jit import drop_stale_caches

if TYPE_CHECKING:
    from engine import drift, score_registry, scores
    from engine.errors import EngineInputError
    from engine.kcenter import kcenter_greedy
    from engine.quota import BalancedSelector, allocate_quotas, balanced_select, group_counts, select_quotas
    from engine.sample import (
        Reservoir,
        UniformSampler,
        WeightedSampler,
        reservoir_sample,
        uniform_sample,
        weighted_sample,
    )
    from engine.select import TopK, bottom_k, top_k
    from engine.sets import LatestPerKey, LatestValues, anti_join, isin_sorted, latest_per_key, semi_join, union

# Each public name and the module that defines it. Names resolve on first use, so importing one
# module (say ``engine._search``, which the store uses) does not import Numba and every kernel.
_HOMES = {
    "BalancedSelector": "quota", "EngineInputError": "errors", "LatestPerKey": "sets",
    "LatestValues": "sets", "Reservoir": "sample", "TopK": "select", "UniformSampler": "sample",
    "WeightedSampler": "sample", "allocate_quotas": "quota", "anti_join": "sets",
    "balanced_select": "quota", "bottom_k": "select", "drift": "drift", "group_counts": "quota",
    "isin_sorted": "sets", "select_quotas": "quota",
    "kcenter_greedy": "kcenter", "latest_per_key": "sets", "reservoir_sample": "sample",
    "score_registry": "score_registry", "scores": "scores", "semi_join": "sets", "top_k": "select",
    "uniform_sample": "sample", "union": "sets", "weighted_sample": "sample",
}  # fmt: skip

drop_stale_caches()


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module = importlib.import_module(f"engine.{home}")
    value = module if home == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BalancedSelector",
    "EngineInputError",
    "LatestPerKey",
    "LatestValues",
    "Reservoir",
    "TopK",
    "UniformSampler",
    "WeightedSampler",
    "allocate_quotas",
    "anti_join",
    "balanced_select",
    "bottom_k",
    "drift",
    "group_counts",
    "isin_sorted",
    "kcenter_greedy",
    "latest_per_key",
    "reservoir_sample",
    "score_registry",
    "scores",
    "select_quotas",
    "semi_join",
    "top_k",
    "uniform_sample",
    "union",
    "weighted_sample",
]
