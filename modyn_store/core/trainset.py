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
import pyarrow as pa

from engine._search import sorted_unique
from modyn_store.core._validate import as_array, as_keys, check_int
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["TrainSet"]

_KEYS_EXPECTED = "a one-dimensional array of int64 keys"
_WEIGHTS_EXPECTED = "a one-dimensional array of finite real numbers > 0 (integer or float dtype, not bool)"


def _check_keys(keys: object) -> np.ndarray:
    """``keys`` as a contiguous 1-D int64 array, by the store's own key rules (:func:`as_keys`)."""
    if not isinstance(keys, (pa.Array, pa.ChunkedArray)):
        # (a masked array's masked entries are refused: ``np.asarray`` would drop the mask)
        arr = as_array(keys, name="keys", expected=_KEYS_EXPECTED)
        if arr.ndim != 1:
            raise InvalidArgumentError("keys", f"shape {arr.shape}", _KEYS_EXPECTED)
        keys = arr
    return np.ascontiguousarray(as_keys(keys, name="keys"))


def _check_weights(weights: object, shape: tuple[int, ...]) -> np.ndarray:
    """``weights`` as a contiguous float64 array of ``shape``, every one finite and > 0 (a
    masked array with masked entries refused, see :func:`as_array`)."""
    arr = as_array(weights, name="weights", expected=_WEIGHTS_EXPECTED)
    if arr.shape != shape:
        raise InvalidArgumentError("weights", f"shape {arr.shape}", f"an array aligned with keys, shape {shape}")
    if arr.size and arr.dtype.kind not in "fiu":  # (by kind: NumPy counts timedelta64 as an integer type)
        raise InvalidArgumentError("weights", f"dtype {arr.dtype}", _WEIGHTS_EXPECTED)
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if out.size and (not np.all(np.isfinite(out)) or np.any(out <= 0)):
        raise InvalidArgumentError("weights", "non-positive or non-finite", "finite weights > 0")
    return out


@dataclass(frozen=True, eq=False)
class TrainSet:
    """An exact train set: keys with per-sample weights, selected from one store version.

    Parameters
    ----------
    keys:
        Unique sample keys, in selection order: a one-dimensional list, NumPy or Arrow array of
        integers that fit int64 (the store's key rules). Floats, NaN, bools, strings, nulls and
        unsigned values above ``2**63 - 1`` are refused, not converted. Stored as int64.
    weights:
        Positive, finite per-sample weights aligned with ``keys`` (same length), of an integer or
        float dtype (bools, strings and complex numbers are refused). Stored as float64.
        Masked NumPy arrays (keys, weights, ``per_epoch`` plans and their weights) are refused
        when an entry is masked (NumPy would drop the mask and use the value behind it) and read
        as their data otherwise.
    version:
        The store version the set was selected from (its data cutoff): an integer >= 0 (a
        Python or NumPy integer; bools and floats are refused).
    per_epoch:
        Optional per-epoch subsets as int64 positions into ``keys`` (e.g. RS2 draws a fresh
        subset every epoch). ``None`` means every epoch uses every key. Epochs beyond the
        given plans cycle through them. A flat array of positions is refused (one plan is
        ``(positions,)``), not taken as one-position plans.
    per_epoch_weights:
        Optional weights of each epoch's plan, aligned with ``per_epoch`` (same number of plans,
        each as long as its plan; the rules of ``weights``): for a set whose epochs weigh a key
        differently (a training that reselected its set with importance weights). ``weights``
        then holds the weight of the last plan that chose each key. A loader serves one epoch's
        weights only (it refuses such a set: train :meth:`epoch_set` of each epoch).

    The set keeps the arrays it is given, made read-only (no copy: a set of 10^8 keys holds no
    second array of them); memory they view must not be changed afterwards through another
    array (the set's checks and digest would no longer describe it).

    Every refused argument raises :class:`~modyn_store.core.errors.InvalidArgumentError`
    naming it.
    """

    keys: np.ndarray
    weights: np.ndarray
    version: int
    per_epoch: tuple[np.ndarray, ...] | None = field(default=None)
    per_epoch_weights: tuple[np.ndarray, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        keys = _check_keys(self.keys)
        weights = _check_weights(self.weights, keys.shape)
        # strictly increasing keys (what selections return) are distinct without a sort
        if keys.size > 1 and bool((keys[1:] <= keys[:-1]).any()) and sorted_unique(keys).size != keys.size:
            raise InvalidArgumentError("keys", "duplicates", "unique keys")
        version = check_int("version", self.version, lo=0)
        plans: tuple[np.ndarray, ...] | None = None
        if self.per_epoch is not None:
            collected: list[np.ndarray] = []
            for i, plan in enumerate(self.per_epoch):
                if isinstance(plan, (int, np.integer)):  # a flat array of positions is one plan, not one per epoch
                    raise InvalidArgumentError(f"per_epoch[{i}]", plan,
                                               "an array of positions per epoch, e.g. per_epoch=(positions,)")
                p = np.ascontiguousarray(as_keys(plan, name=f"per_epoch[{i}]"))  # integers, never truncated
                if p.size and (p.min() < 0 or p.max() >= keys.size):
                    raise InvalidArgumentError(
                        f"per_epoch[{i}]", "out of range", f"positions in [0, {keys.size})"
                    )
                collected.append(p)
            if not collected:
                raise InvalidArgumentError("per_epoch", (), "None or at least one epoch plan")
            plans = tuple(collected)
            for p in plans:
                p.setflags(write=False)
        epoch_weights: tuple[np.ndarray, ...] | None = None
        if self.per_epoch_weights is not None:
            if plans is None or len(self.per_epoch_weights) != len(plans):
                raise InvalidArgumentError(
                    "per_epoch_weights", f"{len(self.per_epoch_weights)} arrays",
                    f"one array per epoch plan ({0 if plans is None else len(plans)} plans)")
            epoch_weights = tuple(_check_weights(w, plan.shape) for w, plan in zip(self.per_epoch_weights, plans))
            for w in epoch_weights:
                w.setflags(write=False)
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "per_epoch", plans)
        object.__setattr__(self, "per_epoch_weights", epoch_weights)
        keys.setflags(write=False)
        weights.setflags(write=False)

    def __setstate__(self, state: dict[str, object]) -> None:
        # unpickled arrays (e.g. in spawned ranks) are new and writable: read-only, as built
        for value in state.values():
            for arr in value if isinstance(value, tuple) else (value,):
                if isinstance(arr, np.ndarray):
                    arr.setflags(write=False)
        self.__dict__.update(state)

    @classmethod
    def uniform(cls, keys: np.ndarray, *, version: int) -> TrainSet:
        """A train set of ``keys`` with weight 1 each (``keys`` as in :class:`TrainSet`)."""
        keys = _check_keys(keys)
        return cls(keys=keys, weights=np.ones(keys.size), version=version)

    @property
    def size(self) -> int:
        """The number of distinct keys."""
        return int(self.keys.size)

    def for_epoch(self, epoch: int) -> np.ndarray:
        """Positions into ``keys`` used in ``epoch`` (all positions unless ``per_epoch`` is set)."""
        epoch = check_int("epoch", epoch, lo=0)
        if self.per_epoch is None:
            return np.arange(self.keys.size, dtype=np.int64)
        return self.per_epoch[epoch % len(self.per_epoch)]

    def epoch_set(self, epoch: int) -> TrainSet:
        """The train set of ``epoch`` alone: its plan's keys, in plan order, with that epoch's
        weights (``per_epoch_weights``, else ``weights``); the set itself without plans.

        A plan that repeats a position (drawn with replacement) gives its distinct keys, in the
        order they first occur, with one plan that serves them as the epoch did (the keys of a
        set are unique); such a plan whose ``per_epoch_weights`` weigh one key differently is
        refused (``InvalidArgumentError`` naming ``per_epoch_weights[i]``: a loader serves one
        weight per key)."""
        if self.per_epoch is None:
            check_int("epoch", epoch, lo=0)
            return self
        pos = self.for_epoch(epoch)
        i = int(epoch) % len(self.per_epoch)
        weights = self.weights[pos] if self.per_epoch_weights is None else self.per_epoch_weights[i]
        distinct, first, inverse = np.unique(pos, return_index=True, return_inverse=True)
        if distinct.size == pos.size:
            return TrainSet(keys=self.keys[pos], weights=weights, version=self.version)
        order = np.argsort(first, kind="stable")  # the distinct positions in the order they first occur
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        plan = rank[inverse.reshape(-1)]
        kept = weights[first[order]]
        if not np.array_equal(kept[plan], weights):
            raise InvalidArgumentError(
                f"per_epoch_weights[{i}]", f"weights that differ for one key of the plan of epoch {epoch}",
                "one weight per key in a plan that repeats positions (a loader serves one weight per key)")
        return TrainSet(keys=self.keys[distinct[order]], weights=kept, version=self.version, per_epoch=(plan,))

    def digest(self) -> str:
        """A sha256 hex digest of keys, weights, version, epoch plans and their weights."""
        h = hashlib.sha256()
        h.update(np.int64(self.version).tobytes())
        h.update(self.keys.tobytes())
        h.update(self.weights.tobytes())
        for plan in self.per_epoch or ():
            h.update(b"|")
            h.update(plan.tobytes())
        for weights in self.per_epoch_weights or ():
            h.update(b"#")
            h.update(weights.tobytes())
        return h.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrainSet):
            return NotImplemented
        return self.digest() == other.digest()

    def __hash__(self) -> int:
        return hash(self.digest())

    def __repr__(self) -> str:
        epochs = "all" if self.per_epoch is None else f"{len(self.per_epoch)} plans"
        if self.per_epoch_weights is not None:
            epochs += " with their weights"
        return f"TrainSet(size={self.size}, version={self.version}, per_epoch={epochs})"
