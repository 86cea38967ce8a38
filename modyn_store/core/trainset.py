"""The train set: what a selection strategy returns and what the training API consumes.

Example
-------
>>> import numpy as np
>>> from modyn_store.core.trainset import TrainSet
>>> ts = TrainSet.uniform(np.array([5, 3, 9]), version=2)
>>> ts.size, ts.for_epoch(0).tolist()
(3, [0, 1, 2])
>>> len(ts.digest())
64
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from modyn_store.core.errors import InvalidArgumentError

__all__ = ["TrainSet"]


@dataclass(frozen=True, eq=False)
class TrainSet:
    """An exact train set: keys with per-sample weights, selected from one store version.

    Parameters
    ----------
    keys:
        Unique int64 sample keys, in selection order.
    weights:
        Positive, finite per-sample weights (float64), aligned with ``keys``.
    version:
        The store version the set was selected from (its data cutoff).
    per_epoch:
        Optional per-epoch subsets as int64 positions into ``keys`` (e.g. RS2 draws a fresh
        subset every epoch). ``None`` means every epoch uses every key. Epochs beyond the
        given plans cycle through them.
    """

    keys: np.ndarray
    weights: np.ndarray
    version: int
    per_epoch: tuple[np.ndarray, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        keys = np.ascontiguousarray(self.keys, dtype=np.int64)
        weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        if keys.ndim != 1:
            raise InvalidArgumentError("keys", keys.shape, "a one-dimensional array of int64 keys")
        if weights.shape != keys.shape:
            raise InvalidArgumentError(
                "weights", weights.shape, f"an array aligned with keys, shape {keys.shape}"
            )
        if weights.size and (not np.all(np.isfinite(weights)) or np.any(weights <= 0)):
            raise InvalidArgumentError("weights", "non-positive or non-finite", "finite weights > 0")
        # strictly increasing keys (what selections return) are distinct without a sort
        if keys.size > 1 and bool((keys[1:] <= keys[:-1]).any()) and np.unique(keys).size != keys.size:
            raise InvalidArgumentError("keys", "duplicates", "unique keys")
        if int(self.version) < 0:
            raise InvalidArgumentError("version", self.version, "a store version >= 0")
        plans: tuple[np.ndarray, ...] | None = None
        if self.per_epoch is not None:
            collected: list[np.ndarray] = []
            for i, plan in enumerate(self.per_epoch):
                p = np.ascontiguousarray(plan, dtype=np.int64)
                if p.ndim != 1 or (p.size and (p.min() < 0 or p.max() >= keys.size)):
                    raise InvalidArgumentError(
                        f"per_epoch[{i}]", "out of range", f"positions in [0, {keys.size})"
                    )
                collected.append(p)
            if not collected:
                raise InvalidArgumentError("per_epoch", (), "None or at least one epoch plan")
            plans = tuple(collected)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "version", int(self.version))
        object.__setattr__(self, "per_epoch", plans)
        keys.setflags(write=False)
        weights.setflags(write=False)

    @classmethod
    def uniform(cls, keys: np.ndarray, *, version: int) -> TrainSet:
        """A train set of ``keys`` with weight 1 each."""
        keys = np.asarray(keys, dtype=np.int64)
        return cls(keys=keys, weights=np.ones(keys.size), version=version)

    @property
    def size(self) -> int:
        """The number of distinct keys."""
        return int(self.keys.size)

    def for_epoch(self, epoch: int) -> np.ndarray:
        """Positions into ``keys`` used in ``epoch`` (all positions unless ``per_epoch`` is set)."""
        if epoch < 0:
            raise InvalidArgumentError("epoch", epoch, "an integer >= 0")
        if self.per_epoch is None:
            return np.arange(self.keys.size, dtype=np.int64)
        return self.per_epoch[epoch % len(self.per_epoch)]

    def digest(self) -> str:
        """A sha256 hex digest of keys, weights, version and epoch plans."""
        h = hashlib.sha256()
        h.update(np.int64(self.version).tobytes())
        h.update(self.keys.tobytes())
        h.update(self.weights.tobytes())
        for plan in self.per_epoch or ():
            h.update(b"|")
            h.update(plan.tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrainSet):
            return NotImplemented
        return self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        epochs = "all" if self.per_epoch is None else f"{len(self.per_epoch)} plans"
        return f"TrainSet(size={self.size}, version={self.version}, per_epoch={epochs})"
