"""``Deletion``: fire when enough of the last train set was deleted or erased."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine._search import sorted_unique, union_keys
from modyn_store.core._validate import check_float
from modyn_store.core.errors import InvalidArgumentError
from modyn_store.core.trainset import TrainSet
from policies.base import Firing, ModelLike, RowSource, Trigger, TriggerInput, register
from policies._state_shape import is_count, is_keys

__all__ = ["Deletion"]


@register("deletion")
class Deletion(Trigger):
    """Fire when the share of the last train set that was deleted or erased reaches ``share``.

    The runner reports each training's train set through :meth:`on_training`; before the first
    one the trigger never fires. Deletions and erasures of a version take effect with the whole
    version, so a firing's cutoff is the end of the version that crossed the share. After firing
    the trigger stays quiet until it is told the next train set.

    Parameters
    ----------
    share:
        The share of the last train set, in ``(0, 1]``.

    Example
    -------
    >>> import numpy as np
    >>> from modyn_store.core.trainset import TrainSet
    >>> from policies import Deletion, TriggerInput
    >>> t = Deletion(share=0.5)
    >>> t.on_training(TrainSet.uniform(np.array([1, 2, 3, 4]), version=1))
    >>> e = np.empty(0, dtype=np.int64)
    >>> t.fire(TriggerInput(version=2, keys=e, ts=e, deleted=np.array([1])))
    []
    >>> [f.statistic for f in t.fire(TriggerInput(version=3, keys=e, ts=e, erased=np.array([3])))]
    [0.5]
    """

    reads_labels = False
    _last_gone: np.ndarray = np.empty(0, dtype=np.int64)
    _last_version: int = 0

    def __init__(self, share: float = 0.1) -> None:
        self.share = check_float("share", share, 0.0, 1.0, lo_open=True)
        self._train_keys: np.ndarray | None = None
        self._train_version = 0  # the version of the train set told last
        self._train_digest = ""  # and a digest of its keys (see state())
        self._removed = np.empty(0, dtype=np.int64)
        self._last_gone = np.empty(0, dtype=np.int64)  # keys removed by the last delta fed
        self._last_version = 0  # the last version of that delta
        self._seen = 0

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"share": 0.05}]

    def on_training(self, train_set: TrainSet) -> None:
        """Start counting removals from ``train_set``. A train set selected at a firing inside
        the last delta fed (its version before the delta's last one) may hold keys that a later
        version of that delta removed: they count at once, as they would have had the delta been
        fed one version at a time (a snapshot never holds a key removed at its version or
        before)."""
        self._train_keys = sorted_unique(train_set.keys)
        self._train_version = int(train_set.version)
        self._train_digest = _digest(self._train_keys)
        self._removed = np.empty(0, dtype=np.int64)
        if int(train_set.version) < self._last_version:
            self._removed = np.intersect1d(self._train_keys, self._last_gone, assume_unique=True)

    def state(self) -> dict[str, Any]:
        """Whether the trigger counts removals from a train set (``None`` when quiet: its size
        and version otherwise), those of its keys removed since, the keys the last delta removed
        and its version, and the samples fed: keys only, no rows. The train set itself is not in
        the state (it may hold millions of keys): a resumed trigger is told it again with
        :meth:`on_training` before :meth:`load_state`, as the online runner does from the
        training catalog."""
        train = self._train_keys
        told = None if train is None else [int(train.size), int(self._train_version), self._train_digest]
        return {"train": told,
                "removed": self._removed.tolist(), "last_gone": self._last_gone.tolist(),
                "last_version": int(self._last_version), "seen": int(self._seen)}

    def load_state(self, state: Mapping[str, Any], rows: RowSource | None = None) -> None:
        count, keys = is_count, is_keys
        names = {"train", "removed", "last_gone", "last_version", "seen"}
        ok = (isinstance(state, Mapping) and set(state) == names
              and (state["train"] is None or (isinstance(state["train"], list) and len(state["train"]) == 3
                                              and count(state["train"][0]) and count(state["train"][1])
                                              and isinstance(state["train"][2], str)))
              and keys(state["removed"]) and keys(state["last_gone"]) and count(state["last_version"])
              and count(state["seen"]))
        if not ok:
            raise InvalidArgumentError("state", state, "a deletion trigger's state: {'train': [size, version, "
                                                       "digest] or None, 'removed': [key], 'last_gone': [key], "
                                                       "'last_version': int >= 0, 'seen': int >= 0}")
        told = self._train_keys
        have = None if told is None else [int(told.size), int(self._train_version), self._train_digest]
        if state["train"] is not None and have != state["train"]:
            raise InvalidArgumentError(
                "state", state, f"the state of a trigger told the train set it counts from ({state['train']} as "
                                f"[size, version, digest]; told {have}): call on_training with that train set first")
        if state["train"] is None:
            self._train_keys = None
        self._removed = sorted_unique(np.asarray(state["removed"], np.int64))
        self._last_gone = sorted_unique(np.asarray(state["last_gone"], np.int64))
        self._last_version, self._seen = int(state["last_version"]), int(state["seen"])

    def _fire(self, delta: TriggerInput, model: ModelLike | None) -> list[Firing]:
        self._seen += len(delta)
        gone = union_keys(delta.deleted, delta.erased)
        self._last_gone, self._last_version = gone, int(delta.version)
        train = self._train_keys
        if train is None or train.size == 0:
            return []
        hit = gone[np.isin(gone, train, assume_unique=True)]
        self._removed = union_keys(self._removed, hit)
        share = self._removed.size / train.size
        if share < float(self.share):
            return []
        self._train_keys = None  # quiet until the next train set
        # the removals take effect with the delta's last version: the cutoff is its end (all the
        # delta's rows), also when its rows belong to earlier versions of the delta
        assert delta.versions is not None
        version = int(delta.version)
        position = int(np.count_nonzero(delta.versions == version))
        return [Firing(version=version, position=position,
                       reason=f"{share:.3f} of the last train set deleted or erased "
                              f"(>= {self.share})", trigger=self.name, seen=self._seen,
                       statistic=share, boundary=None)]


def _digest(keys: np.ndarray) -> str:
    """A digest of a train set's sorted distinct keys: names it in a state (see ``state()``)."""
    return hashlib.blake2b(np.ascontiguousarray(keys, dtype=np.int64).tobytes(), digest_size=12).hexdigest()
