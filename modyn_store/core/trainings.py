"""The catalog of trainings: selections, model checkpoints, lineage and evaluation matrices.

Every recorded training is one atomic store version (``op="train"``) that appends a row to
``trainings``, its exact train set to ``selections`` (``training_id``, ``key``, ``weight``,
``position``) and, for per-epoch plans, one row to ``selection_plans`` (zstd-compressed
``.npy`` blobs, never pickles). Checkpoints are zstd-compressed ``torch.save`` state dicts at
``models/<training_id>.<nonce>.pt.zst`` (a fresh nonce per write, so that a writer never replaces
another's file); loading verifies the sha256 recorded with the training and
uses ``torch.load(weights_only=True)``. torch is imported only by the checkpoint functions.

Example
-------
>>> import numpy as np, pyarrow as pa
>>> from modyn_store import Store, TrainSet
>>> from modyn_store.core.trainings import Catalog
>>> store = Store.open("memory://catalog-doc", create=True)
>>> _ = store.append(pa.table({"ts": [1, 2, 3]}))
>>> cat = Catalog(store)
>>> rec = cat.record_training("t1", TrainSet.uniform(np.array([2, 0]), version=1), policy="all", seed=7)
>>> cat.get("t1").seed, cat.train_set("t1").keys.tolist()
(7, [2, 0])
"""

from __future__ import annotations

import builtins
import hashlib
import pickle
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, cast

import numpy as np
import pyarrow as pa

from engine._search import sorted_unique, unsorted_hits
from modyn_store.core._catalog_tables import (
    EVALUATIONS,
    EVALUATIONS_OPTIONAL,
    EVALUATIONS_SCHEMA,
    SELECTIONS,
    TRAININGS,
    TRAININGS_SCHEMA,
)
from modyn_store.core._checkpoints import Sha256Writer, check_state, unzip_hashed
from modyn_store.core._plainjson import plain_json, read_json
from modyn_store.core._trainset_rows import read_trainset, trainset_tables
from modyn_store.core._validate import check_int, check_name
from modyn_store.core.errors import (
    CorruptionError,
    DataUnavailableError,
    InvalidArgumentError,
    UnknownKeyError,
    UnknownVersionError,
)
from modyn_store.core.trainset import TrainSet

__all__ = ["Catalog", "CheckpointRef", "Cost", "LineageStep", "TrainingRecord"]

#: hex digits of the nonce in a checkpoint's file name
CHECKPOINT_NONCE = 12
# ``models/<training_id>.<nonce>.pt.zst``; stores written before nonces have ``models/<id>.pt.zst``
_CHECKPOINT_URI = re.compile(rf"models/([^/]+?)(?:\.[0-9a-f]{{{CHECKPOINT_NONCE}}})?\.pt\.zst")


@dataclass(frozen=True)
class Cost:
    """What a training cost: samples seen (over all epochs), wall and device seconds."""

    samples: int = 0
    wall_s: float = 0.0
    device_s: float = 0.0


@dataclass(frozen=True)
class CheckpointRef:
    """Where a checkpoint lives in the store and the sha256 of its stored bytes."""

    uri: str
    sha256: str


@dataclass(frozen=True)
class TrainingRecord:
    """One recorded training (see :class:`Catalog`).

    ``data_version`` is the store version its train set was selected from; ``cutoff`` the
    trigger's ``(version, position)``; ``config`` the trainer's settings (for reproduction);
    ``recorded_version`` the store version that recorded it.
    """

    training_id: str
    created: datetime
    data_version: int
    cutoff: tuple[int, int] | None
    trigger: dict[str, Any]
    policy: str
    policy_params: dict[str, Any]
    seed: int
    config: dict[str, Any]
    n_keys: int
    selection_digest: str
    checkpoint: CheckpointRef | None
    parent_id: str | None
    update_decision: str | None
    metrics: dict[str, Any]
    cost: Cost
    recorded_version: int


@dataclass(frozen=True)
class LineageStep:
    """One checkpoint in a model's ancestry and the keys it was trained on."""

    training_id: str
    checkpoint: CheckpointRef | None
    keys: np.ndarray = field(repr=False)


def _stored_json(row: dict[str, Any], field: str) -> Any:
    """The JSON field ``field`` of a stored training row, decoded; damage is :class:`CorruptionError`."""
    try:
        return read_json(row[field])
    except (ValueError, TypeError) as exc:
        raise CorruptionError(f"training {row.get('training_id')!r}: its recorded {field} is not readable "
                              f"JSON ({exc})") from exc


def _held(keys: np.ndarray, gone: np.ndarray) -> np.ndarray:
    """The sorted distinct ``keys`` (any order) that the sorted ``gone`` holds."""
    return sorted_unique(keys[unsorted_hits(keys, gone)]) if gone.size else gone


def _json(name: str, value: Any) -> str:
    """``value`` (a mapping, ``None`` for none) as the JSON the catalog stores."""
    try:
        mapping = dict(value or {})
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(name, value, "a mapping of JSON-serializable plain values") from exc
    return plain_json(name, mapping)


class Catalog:
    """Trainings, selections, checkpoints and evaluations of one store.

    Parameters
    ----------
    store:
        A :class:`modyn_store.Store`.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"Catalog({self.store.uri!r})"

    @staticmethod
    def new_id(prefix: str = "t") -> str:
        """A fresh, unique training id such as ``t-3f2a9c1b7d4e``."""
        return check_name("training_id", f"{prefix}-{uuid.uuid4().hex[:12]}")

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, training_id: str, state_dict: Mapping[str, Any]) -> CheckpointRef:
        """Write ``state_dict`` (zstd-compressed ``torch.save``) to a new file
        ``models/<training_id>.<nonce>.pt.zst``.

        Every call writes a file of its own: two processes saving under the same id (only one of
        which can record it) never overwrite each other's checkpoint. A value that
        ``torch.load(weights_only=True)`` would refuse on loading is refused before anything is
        written (:func:`~modyn_store.core._checkpoints.check_state`).
        """
        import torch
        import zstandard

        check_name("training_id", training_id)
        if not isinstance(state_dict, Mapping):
            raise InvalidArgumentError("state_dict", type(state_dict).__name__, "a mapping of names to tensors")
        check_state(dict(state_dict))
        nonce = uuid.uuid4().hex[:CHECKPOINT_NONCE]
        rel = f"models/{training_id}.{nonce}.pt.zst"
        path = self.store.path(rel)
        fs = self.store.fs
        fs.makedirs(self.store.path("models"), exist_ok=True)
        tmp = self.store.path(f"models/.{training_id}.{nonce}.tmp")
        try:
            with fs.open(tmp, "wb") as fh:  # streamed: no serialized or compressed copy is held in memory
                out = Sha256Writer(fh)
                with zstandard.ZstdCompressor(level=3).stream_writer(cast("IO[bytes]", out), closefd=False) as zw:
                    torch.save(dict(state_dict), zw)
        except BaseException:
            if fs.exists(tmp):  # a save that failed part way leaves no file behind
                fs.rm(tmp)
            raise
        fs.mv(tmp, path)
        return CheckpointRef(rel, out.sha256.hexdigest())

    def load_checkpoint(self, ref: str | CheckpointRef, *, map_location: Any = "cpu") -> dict[str, Any]:
        """The state dict of a training (by id) or a :class:`CheckpointRef`, after verifying its sha256.

        A file that does not match its recorded sha256, or that is not a zstd-compressed state
        dict of tensors (``torch.load(weights_only=True)`` refuses any other object; nothing in
        it is executed), raises :class:`CorruptionError` naming the file.
        """
        import torch
        import zstandard

        if isinstance(ref, str):
            rec = self.get(ref)
            if rec.checkpoint is None:
                raise DataUnavailableError(f"training {ref!r} recorded no checkpoint")
            ref = rec.checkpoint
        if not isinstance(ref, CheckpointRef):
            raise InvalidArgumentError("ref", type(ref).__name__, "a training id or a CheckpointRef")
        rel = ref.uri
        m = _CHECKPOINT_URI.fullmatch(rel) if isinstance(rel, str) else None
        if m is None:
            raise InvalidArgumentError("ref.uri", rel, "'models/<training_id>[.<nonce>].pt.zst'")
        check_name("training_id", m.group(1))
        path = self.store.path(rel)
        if not self.store.fs.exists(path):
            raise DataUnavailableError(f"checkpoint {rel!r} is missing from the store")
        with self.store.fs.open(path, "rb") as fh:
            raw, digest, bad, complete = unzip_hashed(fh)
        if digest != ref.sha256:
            raise CorruptionError(f"checkpoint {rel!r} is corrupt: sha256 {digest} != recorded {ref.sha256}")
        try:
            if bad is not None:
                raise bad
            if not complete:
                raise EOFError("the zstd frame is cut short")
            raw.seek(0)
            state = torch.load(raw, map_location=map_location, weights_only=True)
        except (zstandard.ZstdError, pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise CorruptionError(f"checkpoint {rel!r} is not a state dict of tensors: {exc}") from exc
        except RuntimeError as exc:  # an unreadable archive; others (a device map_location lacks) pass
            if "PytorchStreamReader" not in str(exc):
                raise
            raise CorruptionError(f"checkpoint {rel!r} is not a state dict of tensors: {exc}") from exc
        if not isinstance(state, Mapping):
            raise CorruptionError(f"checkpoint {rel!r} holds a {type(state).__name__}, not a state dict")
        return dict(state)

    # -- trainings -----------------------------------------------------------------------
    def record_training(
        self,
        training_id: str,
        train_set: TrainSet,
        *,
        policy: str = "",
        policy_params: Mapping[str, Any] | None = None,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any] | None = None,
        cutoff: tuple[int, int] | None = None,
        checkpoint: CheckpointRef | None = None,
        parent_id: str | None = None,
        update_decision: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        cost: Cost = Cost(),
        message: str = "",
    ) -> TrainingRecord:
        """Record a training and its exact train set as one atomic store version.

        Refused before anything is written: see :meth:`check_record`, an id already used, and
        (:class:`DataUnavailableError`) a train set holding keys erased, or rows a ``vacuum``
        purged, since it was read.
        """
        seed = self.check_record(
            training_id, train_set, policy=policy, policy_params=policy_params, seed=seed, config=config,
            trigger=trigger, cutoff=cutoff, parent_id=parent_id, update_decision=update_decision, metrics=metrics,
        )
        row = {
            "training_id": training_id,
            "created": datetime.now(timezone.utc),
            "data_version": train_set.version,
            "cutoff_version": int(cutoff[0]) if cutoff else None,
            "cutoff_position": int(cutoff[1]) if cutoff else None,
            "trigger": _json("trigger", trigger),
            "policy": str(policy),
            "policy_params": _json("policy_params", policy_params),
            "seed": seed,
            "config": _json("config", config),
            "n_keys": train_set.size,
            "selection_digest": train_set.digest(),
            "checkpoint_uri": checkpoint.uri if checkpoint else None,
            "checkpoint_sha256": checkpoint.sha256 if checkpoint else None,
            "parent_id": parent_id,
            "update_decision": update_decision,
            "metrics": _json("metrics", metrics),
            "cost_samples": int(cost.samples),
            "cost_wall_s": float(cost.wall_s),
            "cost_device_s": float(cost.device_s),
        }
        with self.store.transaction("train", message=message or f"training {training_id}") as txn:
            if self._find(training_id, None) is not None:
                raise InvalidArgumentError("training_id", training_id, "a training id not used before")
            # keys erased, or rows purged, since the train set was read: the erase's or vacuum's
            # report, which names the recorded trainings that used them, would never name this one
            hit = _held(train_set.keys, self.store._erased_keys(kept=False))
            if hit.size:
                raise DataUnavailableError(
                    f"train set of training {training_id!r}: {hit.size} keys were erased since it was read, "
                    f"e.g. {hit[:5].tolist()}; a training on erased rows is not recorded", keys=hit)
            hit = _held(train_set.keys, self.store.as_of(train_set.version).unavailable())
            if hit.size:
                raise DataUnavailableError(
                    f"train set of training {training_id!r}: a vacuum purged the rows of {hit.size} of its keys, e.g. "
                    f"{hit[:5].tolist()}: it could never be reproduced; tag a version to keep its rows", keys=hit)
            txn.append(TRAININGS, pa.Table.from_pylist([row], schema=TRAININGS_SCHEMA))
            for name, rows in trainset_tables(training_id, train_set):
                txn.append(name, rows)
            txn.details = {"training_id": training_id, "keys": train_set.size}
        return self.get(training_id)

    def check_record(
        self,
        training_id: str,
        train_set: TrainSet,
        *,
        policy: str = "",
        policy_params: Mapping[str, Any] | None = None,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
        trigger: Mapping[str, Any] | None = None,
        cutoff: tuple[int, int] | None = None,
        parent_id: str | None = None,
        update_decision: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> int:
        """Refuse what :meth:`record_training` would refuse, before anything is written; return
        the seed as recorded. A trainer calls it (and :meth:`check_unused`) before it trains, so
        no training runs and no checkpoint is written for a record that cannot be stored.

        Refused: names that are not valid ids, a ``train_set`` that is not a
        :class:`~modyn_store.core.trainset.TrainSet` or is from a version above the store's
        latest (:class:`UnknownVersionError`), a ``seed`` that is not an int64 integer, a
        ``cutoff`` that is not a pair of integers, an ``update_decision`` that is not a string,
        and mappings that are not JSON (:class:`InvalidArgumentError`).

        >>> import numpy as np, pyarrow as pa
        >>> from modyn_store import Store
        >>> store = Store.open("memory://check-record-doc", create=True)
        >>> _ = store.append(pa.table({"ts": [1, 2]}))
        >>> Catalog(store).check_record("t1", TrainSet.uniform(np.array([0, 1]), version=1), seed=7)
        7
        """
        check_name("training_id", training_id)
        if parent_id is not None:
            check_name("parent_id", parent_id)
        if not isinstance(train_set, TrainSet):
            raise InvalidArgumentError("train_set", type(train_set).__name__, "a TrainSet")
        seed = check_int("seed", seed, -(1 << 63), (1 << 63) - 1)
        latest = self.store.version
        if train_set.version > latest:
            raise UnknownVersionError(
                f"train_set.version {train_set.version} does not exist: valid versions are 0..{latest}"
            )
        if cutoff is not None:
            try:
                ok = len(cutoff) == 2 and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cutoff)
            except TypeError:
                ok = False
            if not ok:
                raise InvalidArgumentError("cutoff", cutoff, "a (version, position) pair of integers")
        if not isinstance(policy, str):
            raise InvalidArgumentError("policy", policy, "the selection policy's name (a string)")
        if update_decision is not None and not isinstance(update_decision, str):
            raise InvalidArgumentError("update_decision", update_decision, "a string or None")
        for name, value in (("trigger", trigger), ("policy_params", policy_params), ("config", config),
                            ("metrics", metrics)):
            _json(name, value)
        return seed

    def check_unused(self, training_id: str) -> None:
        """Refuse an id the catalog already holds (its checkpoint must not be overwritten)."""
        if self._find(check_name("training_id", training_id), None) is not None:
            raise InvalidArgumentError("training_id", training_id, "a training id not used before")

    def _find(self, training_id: str, version: int | None) -> dict[str, Any] | None:
        t = self.store.read_table(TRAININGS, version, filter=f"training_id = '{training_id}'")
        if t is None or t.num_rows == 0:
            return None
        return t.to_pylist()[-1]

    @staticmethod
    def _record(row: dict[str, Any]) -> TrainingRecord:
        """The record a catalog row holds; :class:`CorruptionError` for a JSON field that does not
        decode (damaged, or crafted: nested too deep for the decoder)."""
        ckpt = CheckpointRef(row["checkpoint_uri"], row["checkpoint_sha256"]) if row["checkpoint_uri"] else None
        cutoff = (
            (int(row["cutoff_version"]), int(row["cutoff_position"])) if row["cutoff_version"] is not None else None
        )
        return TrainingRecord(
            training_id=row["training_id"],
            created=row["created"],
            data_version=int(row["data_version"]),
            cutoff=cutoff,
            trigger=_stored_json(row, "trigger"),
            policy=row["policy"],
            policy_params=_stored_json(row, "policy_params"),
            seed=int(row["seed"]),
            config=_stored_json(row, "config"),
            n_keys=int(row["n_keys"]),
            selection_digest=row["selection_digest"],
            checkpoint=ckpt,
            parent_id=row["parent_id"],
            update_decision=row["update_decision"],
            metrics=_stored_json(row, "metrics"),
            cost=Cost(int(row["cost_samples"]), float(row["cost_wall_s"]), float(row["cost_device_s"])),
            recorded_version=int(row["_version"]),
        )

    def get(self, training_id: str) -> TrainingRecord:
        """The record of ``training_id`` (``UnknownKeyError`` if none)."""
        check_name("training_id", training_id)
        row = self._find(training_id, None)
        if row is None:
            raise UnknownKeyError(f"no training {training_id!r} in the catalog")
        return self._record(row)

    def list(self, version: int | None = None) -> list[TrainingRecord]:
        """Every training recorded at or before ``version`` (default: latest), oldest first."""
        t = self.store.read_table(TRAININGS, version)
        if t is None:
            return []
        rows = sorted(t.to_pylist(), key=lambda r: (r["_version"], r["training_id"]))
        return [self._record(r) for r in rows]

    def train_set(self, training_id: str) -> TrainSet:
        """The exact train set of a training: same keys, weights, order and epoch plans."""
        rec = self.get(training_id)
        return read_trainset(self.store, training_id, rec.n_keys, rec.data_version, rec.selection_digest)

    def lineage(self, model_id: str) -> builtins.list[LineageStep]:
        """The chain of checkpoints ``model_id`` descends from (itself first) with their train keys."""
        steps: builtins.list[LineageStep] = []
        seen: set[str] = set()
        current: str | None = model_id
        while current is not None:
            if current in seen:
                raise DataUnavailableError(f"the lineage of {model_id!r} has a cycle at {current!r}")
            seen.add(current)
            rec = self.get(current)
            t = self.store.read_table(SELECTIONS, None, filter=f"training_id = '{current}'")
            keys = np.sort(t.column("key").to_numpy()) if t is not None else np.empty(0, np.int64)
            steps.append(LineageStep(current, rec.checkpoint, keys))
            current = rec.parent_id
        return steps

    # -- evaluations ---------------------------------------------------------------------
    def record_evaluation(self, table: pa.Table, *, message: str = "") -> str:
        """Store a model x slice x metric matrix (columns of ``EVALUATIONS_SCHEMA`` less the id).

        ``margin`` (a sampled cell's 95% half-width) and ``population`` (the slice's rows, ``n``
        being those evaluated) may be left out (stored null). An ``evaluations`` table written
        before these columns existed gets them, null in its earlier rows, on the first write that
        carries them (Lance schema evolution; a write without them appends as before)."""
        eval_id = self.new_id("e")
        if not isinstance(table, pa.Table):
            raise InvalidArgumentError("table", type(table).__name__, "a pyarrow Table")
        cols = [f.name for f in EVALUATIONS_SCHEMA if f.name != "evaluation_id"]
        missing = [c for c in cols if c not in table.column_names and c not in EVALUATIONS_OPTIONAL]
        if missing:
            raise InvalidArgumentError("table", missing, f"a table with columns {cols} "
                                                         f"({list(EVALUATIONS_OPTIONAL)} optional)")
        for c in EVALUATIONS_OPTIONAL:
            if c not in table.column_names:
                table = table.append_column(c, pa.nulls(table.num_rows, EVALUATIONS_SCHEMA.field(c).type))
        out = table.select(cols).cast(pa.schema([EVALUATIONS_SCHEMA.field(c) for c in cols]))
        out = out.add_column(0, "evaluation_id", pa.array([eval_id] * out.num_rows, pa.string()))
        with self.store.transaction("evaluate", message=message or f"evaluation {eval_id}") as txn:
            out = self._evolve_evaluations(out)
            txn.append(EVALUATIONS, out)
            txn.details = {"evaluation_id": eval_id, "rows": out.num_rows}
        return eval_id

    def _evolve_evaluations(self, rows: pa.Table) -> pa.Table:
        """``rows`` for an ``evaluations`` table of an earlier release (under the writer lock):
        its missing optional columns are added (all null) when ``rows`` hold a value in them,
        else dropped from ``rows``, so the table keeps its schema."""
        ds = self.store._tables.open(EVALUATIONS)
        if ds is None:
            return rows
        lacking = [c for c in EVALUATIONS_OPTIONAL if c not in ds.schema.names]
        if not lacking:
            return rows
        if all(rows.column(c).null_count == rows.num_rows for c in lacking):
            return rows.drop_columns(lacking)
        self.store._tables.guard()  # still the writer (an object store's lease), as every table write checks
        self.store._tables._unpin(EVALUATIONS)
        # (a schema change of its own: a write that fails after it leaves the columns, all null,
        # which read as "no margin" at every version)
        ds.add_columns([EVALUATIONS_SCHEMA.field(c) for c in lacking])
        return rows

    def evaluations(self, evaluation_id: str | None = None) -> pa.Table | None:
        """Stored evaluation rows (all, or one evaluation's)."""
        if evaluation_id is None:
            return self.store.read_table(EVALUATIONS)
        check_name("evaluation_id", evaluation_id)
        return self.store.read_table(EVALUATIONS, None, filter=f"evaluation_id = '{evaluation_id}'")
