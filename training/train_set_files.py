"""Train sets as files: the ``.npz`` a ``torchrun`` launch reads its train set from.

Plain arrays, no pickles, with the train set's digest, which loading checks (a file without one
is refused: it cannot be checked).

Example
-------
>>> import numpy as np, tempfile, os
>>> from modyn_store import TrainSet
>>> from training.train_set_files import load_train_set, save_train_set
>>> path = os.path.join(tempfile.mkdtemp(), "set.npz")
>>> ts = TrainSet.uniform(np.arange(5), version=3)
>>> save_train_set(ts, path)
>>> load_train_set(path) == ts
True
"""

from __future__ import annotations

import os
import struct
import zipfile
from typing import BinaryIO

import numpy as np

from modyn_store.core.errors import CorruptionError, ModynStoreError
from modyn_store.core.trainset import TrainSet

__all__ = ["load_train_set", "save_train_set"]


def save_train_set(train_set: TrainSet, path: str) -> None:
    """Write ``train_set`` to ``path`` as an ``.npz`` (plain arrays, no pickles), with its
    digest (:meth:`TrainSet.digest`), which :func:`load_train_set` checks."""
    arrays: dict[str, np.ndarray] = {
        "keys": train_set.keys,
        "weights": train_set.weights,
        "version": np.array([train_set.version], np.int64),
        "digest": np.array(train_set.digest()),
    }
    for i, plan in enumerate(train_set.per_epoch or ()):
        arrays[f"epoch{i}"] = plan
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool


def load_train_set(path: str) -> TrainSet:
    """Read a train set written by :func:`save_train_set`.

    Raises :class:`~modyn_store.core.errors.CorruptionError` when the file is not the train set
    it was written as: not a readable ``.npz`` (truncated, overwritten), arrays missing, epoch
    plans missing between others, an archive directory listing fewer arrays than its end record
    states, or keys, weights, version or plans that no longer match the digest written with them.
    A file without a digest (written by a release before train set files carried one, or with its
    digest removed) cannot be checked and is refused too, with a message that says how to write
    it again (:func:`save_train_set` of the train set, e.g. ``Catalog(store).train_set(id)`` for a
    recorded training). An archive that zipfile refuses for any reason
    (a damaged format version, encryption flag or member offset) is a ``CorruptionError`` too;
    a file that cannot be opened raises its ``OSError``.
    """
    # opened here (a missing or unreadable file raises its OSError as it is); np.load would
    # leave its own handle open when the archive is damaged
    with open(path, "rb") as fh:
        try:
            return _read_train_set(path, fh)
        except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError, NotImplementedError, RuntimeError) \
                as exc:
            # (zipfile raises NotImplementedError for an unknown format version, RuntimeError for
            # an encryption flag, OSError for member offsets before the start of the file)
            if isinstance(exc, ModynStoreError):  # the store's own checks (a ValueError too): as they are
                raise
            raise CorruptionError(f"train set file {path!r} cannot be read as one: {type(exc).__name__}: {exc}") \
                from exc


def _members_stated(fh: BinaryIO) -> int | None:
    """The number of members the archive's end record states, where ``np.savez`` puts that
    record (the last 22 bytes; ``None`` when it is not there or counts in a zip64 record)."""
    fh.seek(0, os.SEEK_END)
    if fh.tell() < 22:
        return None
    fh.seek(-22, os.SEEK_END)
    end = fh.read(22)
    fh.seek(0)
    if end[:4] != b"PK\x05\x06":
        return None
    (total,) = struct.unpack_from("<H", end, 10)
    return None if total == 0xFFFF else int(total)


def _read_train_set(path: str, fh: BinaryIO) -> TrainSet:
    stated = _members_stated(fh)
    with np.load(fh, allow_pickle=False) as z:
        if stated is not None and stated != len(z.files):
            # a damaged directory record that swallows the records after it hides those arrays
            # (the digest, epoch plans), and the rest would be read as a set without them
            raise CorruptionError(f"train set file {path!r} lists {len(z.files)} arrays, its end record {stated}")
        plans = sorted((int(k[5:]), z[k]) for k in z.files if k.startswith("epoch"))
        if [i for i, _ in plans] != list(range(len(plans))):
            raise CorruptionError(f"train set file {path!r} holds epoch plans {[i for i, _ in plans]}, "
                                  f"not epochs 0..{len(plans) - 1}")
        if z["version"].shape != (1,):
            raise CorruptionError(f"train set file {path!r} holds a version of shape {z['version'].shape}")
        ts = TrainSet(
            z["keys"], z["weights"], int(z["version"][0]), tuple(p for _, p in plans) if plans else None
        )
        if "digest" not in z.files:
            raise CorruptionError(
                f"train set file {path!r} holds no digest (written by a release before train set files "
                "carried one, or the digest was removed), so what it holds cannot be checked: write it "
                "again with training.train_set_files.save_train_set(train_set, path), e.g. from "
                "modyn_store.core.trainings.Catalog(store).train_set(training_id) for a recorded training")
        if str(z["digest"]) != ts.digest():
            raise CorruptionError(f"train set file {path!r} does not match the digest written with it")
        return ts
