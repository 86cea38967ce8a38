"""Errors raised by the training API.

Every class derives from :class:`modyn_store.core.errors.ModynStoreError`.

Example
-------
>>> import numpy as np
>>> from training.errors import ErasedKeysError
>>> err = ErasedKeysError("training t1", np.array([3, 5]))
>>> err.keys.tolist()
[3, 5]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modyn_store.core.errors import DataUnavailableError, InvalidArgumentError, ModynStoreError
from modyn_store.core.trainset import TrainSet

__all__ = ["CacheError", "DivergedError", "ErasedKeysError", "ReproductionError"]


class ErasedKeysError(DataUnavailableError):
    """Keys of a train set are no longer live (erased, deleted or purged); nothing is substituted.

    Parameters
    ----------
    what:
        What needed the keys (e.g. ``"training t7"`` or ``"train set at version 4"``).
    keys:
        The sorted int64 keys that cannot be returned; kept in the ``keys`` attribute.
    """

    def __init__(self, what: str, keys: np.ndarray) -> None:
        self.what = what
        keys = np.sort(np.asarray(keys, dtype=np.int64))
        shown = keys[:10].tolist()
        more = f" and {keys.size - 10} more" if keys.size > 10 else ""
        super().__init__(
            f"{what}: {keys.size} keys can no longer be returned (erased, deleted, purged or never inserted): "
            f"{shown}{more}; refusing to substitute other rows",
            keys=keys,
        )

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a Ray task or a DDP rank, read back intact
        return (type(self), (self.what, self.keys), self.__dict__)


class CacheError(ModynStoreError):
    """A materialized cache entry is unreadable or inconsistent with its metadata."""


class ReproductionError(ModynStoreError):
    """A recorded training cannot be reproduced (missing checkpoint, model or configuration)."""


class DivergedError(ModynStoreError):
    """An epoch's mean loss is not finite (NaN or inf): the weights are no longer meaningful, so
    the training stops before anything of it is recorded.

    Parameters
    ----------
    epoch:
        The epoch (from 0) whose loss is not finite; kept in the ``epoch`` attribute.
    loss:
        Its mean loss; kept in the ``loss`` attribute.
    """

    def __init__(self, epoch: int, loss: float) -> None:
        self.epoch, self.loss = epoch, loss
        super().__init__(
            f"epoch {epoch}: the mean training loss is {loss}: a non-finite input value (an inf "
            "or NaN feature the model reads) or a diverging optimization (try a smaller lr); "
            "nothing of this training was recorded")

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a Ray Train worker or a DDP rank, read back intact
        return (type(self), (self.epoch, self.loss), self.__dict__)


def check_loss(epoch: int, loss: float) -> float:
    """``loss`` (an epoch's mean training loss), or :class:`DivergedError` if it is not finite.

    >>> check_loss(0, 0.25)
    0.25
    """
    if not np.isfinite(loss):
        raise DivergedError(epoch, loss)
    return loss


def check_rows(train_set: Any, epochs: int) -> None:
    """Every epoch ``train_set`` serves (its first ``epochs``) must hold a row: a mean loss over
    none is undefined, and the checkpoint recorded would be the untrained model."""
    if not isinstance(train_set, TrainSet):
        return  # (named by the catalog's checks, or by the loader)
    for epoch in range(epochs if train_set.per_epoch is not None else min(epochs, 1)):
        n = int(train_set.for_epoch(epoch).size)
        if n == 0:
            raise InvalidArgumentError(
                "train_set", f"{n} rows in epoch {epoch} (set of {train_set.size} keys)",
                "at least one row in every epoch (a pipeline skips a train set under limits.min_train_rows)")
