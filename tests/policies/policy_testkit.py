"""Shared pieces of the policy tests: small deltas, a stub model and a real store with scores."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from policies import Firing, Trigger, TriggerInput
from policies.base import ENTRY_POINT_GROUP


def delta(version: int, keys: np.ndarray, *, ts: np.ndarray | None = None,
          labels: np.ndarray | None = None, x: np.ndarray | None = None,
          deleted: np.ndarray | None = None, erased: np.ndarray | None = None) -> TriggerInput:
    """A one-version delta with a feature column ``x``."""
    keys = np.asarray(keys, dtype=np.int64)
    e = np.empty(0, dtype=np.int64)
    return TriggerInput(
        version=version, keys=keys, ts=keys if ts is None else ts,
        labels=labels, features={} if x is None else {"x": x},
        deleted=e if deleted is None else deleted, erased=e if erased is None else erased)


class ThresholdModel:
    """A stub model over column ``x``: class 1 when x > cut; embeddings are x itself."""

    def __init__(self, cut: float = 0.0) -> None:
        self.cut = cut

    def embed(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.asarray(features["x"], dtype=np.float64).reshape(-1, 1)

    def logits(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        x = np.asarray(features["x"], dtype=np.float64) - self.cut
        return np.stack([-x, x], axis=1)


def build_store(n_versions: int = 4, per_version: int = 60, n_classes: int = 3, seed: int = 0):
    """A real store: versions of labelled rows, then a delete, an erase and score versions."""
    from modyn_store import Store

    rng = np.random.default_rng(seed)
    store = Store.open(f"memory://policies-{uuid.uuid4().hex}", create=True)
    for v in range(n_versions):
        k = np.arange(v * per_version, (v + 1) * per_version, dtype=np.int64)
        store.append(pa.table({"key": k, "ts": k * 10, "label": rng.integers(0, n_classes, k.size),
                               "x": rng.normal(size=k.size)}))
    store.delete(keys=[1, 5, per_version + 2])
    store.erase([7, 2 * per_version + 3], reason="test")
    snap = store.as_of(None)
    keys = snap.keys()
    for name in ("loss", "gradnorm", "el2n", "least_confidence", "entropy", "irreducible_loss"):
        store.scores.write(name, keys, rng.uniform(0.01, 2.0, keys.size))
    store.scores.write("margin", keys, rng.uniform(0.0, 0.99, keys.size))
    store.scores.write("embedding", keys, rng.normal(size=(keys.size, 4)))
    return store


class EveryOtherVersion(Trigger):
    """A user trigger (not registered): fires at the end of every second non-empty version."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self._count = 0

    def _fire(self, delta: TriggerInput, model: object = None) -> list[Firing]:
        self._count += 1
        if (self._count + self.offset) % 2:
            return []
        return [delta.firing(len(delta), "every other version", trigger="user", seen=0)]


class NotAPolicy:
    """A class that does not derive from a policy base."""


def install_entry_points(folder: Path, entries: dict[str, str]) -> None:
    """Install into ``folder`` (which must be on ``sys.path``) a distribution, metadata only,
    declaring ``entries`` (name -> ``module:Class``) in the policies' entry-point group."""
    dist = folder / f"zz_plug_dist_{uuid.uuid4().hex[:8]}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist.name[:-15]}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")
