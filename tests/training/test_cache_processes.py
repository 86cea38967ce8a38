"""Cache entries removed and built again by other processes while this one opens or removes
them: removal is idempotent, and an entry's files are read as one build, never mixed."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from modyn_store import Store
from training._cache_files import _read_entry, _write_entry
from training.cache import Cache
from training.columns import ColumnSpec
from training.errors import CacheError

SPECS = {f"x{i}": ColumnSpec(f"x{i}", "fixed", "<f8", ()) for i in range(16)}
KEYS = np.arange(50, dtype=np.int64)


def _fill(value: float) -> Any:
    """Every column of every row holds ``value``: the build a column file came from."""

    def fill(alloc: Any) -> tuple[np.ndarray, dict]:
        for spec in SPECS.values():
            alloc(spec, KEYS.size)[:] = value
        return KEYS, {}

    return fill


def _publish_builds(root: str, stop: Any) -> None:
    """Another process: removes the entry ``m`` and publishes a new build of it, again and again
    (what an eviction or erasure followed by a rebuild does), build ``v`` holding ``v``."""
    v = 1
    while not stop.is_set():
        tmp = os.path.join(root, f".tmp-m-{v}")
        os.makedirs(tmp)
        _write_entry(tmp, KEYS, SPECS, _fill(float(v)), stage=True)
        shutil.rmtree(os.path.join(root, "m"))
        os.rename(tmp, os.path.join(root, "m"))
        v += 1


def test_an_entry_replaced_while_it_is_opened_is_never_read_mixed(tmp_path: Path) -> None:
    """Reading an entry opens ``rows.npy`` and every column file one after the other: another
    process replacing the entry in between gave columns of two builds in one entry."""
    root = str(tmp_path / "cache")
    os.makedirs(os.path.join(root, ".tmp-m-0"))
    _write_entry(os.path.join(root, ".tmp-m-0"), KEYS, SPECS, _fill(0.0), stage=True)
    os.rename(os.path.join(root, ".tmp-m-0"), os.path.join(root, "m"))
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=_publish_builds, args=(root, stop))
    proc.start()
    mixed: list[list[float]] = []
    whole = 0
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8.0 and len(mixed) < 3:
            try:
                entry = _read_entry("m", os.path.join(root, "m"))
            except (FileNotFoundError, CacheError):
                continue  # between a removal and a publication (or caught mid-removal)
            builds = sorted({float(a[0]) for a in entry.fixed.values()} | {float(a[-1]) for a in entry.fixed.values()})
            if len(builds) > 1:
                mixed.append(builds)
            else:
                whole += 1
    finally:
        stop.set()
        proc.join(60)
    assert proc.exitcode == 0
    assert mixed == []
    assert whole > 0


def _erase_loop(uri: str, until: float) -> None:
    """Another process: what an erasure of the entry's keys does to the cache, again and again."""
    store = Store.open(uri)
    while time.time() < until:
        try:
            store.caches.drop_holding(KEYS[:1])
        except OSError:
            pass  # (its own retries may lose to the builder refilling the folder: not checked here)


def test_discard_beside_another_process_removing_the_entry_is_no_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    store = Store.open(uri, create=True)
    cache = Cache(store.path("_cache"), index=store.caches)
    cache.discard("e")  # absent: nothing to do
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_erase_loop, args=(uri, time.time() + 6.0))
    proc.start()
    failures: list[str] = []
    discards = 0
    try:
        while proc.is_alive() and discards < 400:
            try:
                cache.build("e", KEYS, SPECS, _fill(1.0))
            except FileNotFoundError:
                pass  # the erasure removed the build's folder while it was written: it fails
            try:
                cache.discard("e")
            except OSError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            discards += 1
    finally:
        proc.join(60)
    assert failures == []
    assert cache.entries() == [] and store.caches.entries() == []


def test_an_entry_open_in_a_process_is_dead_once_another_build_replaced_it(tmp_path: Path) -> None:
    """A rebuild's ``keys.npy`` may get the freed inode number of the old one: the build id in
    ``meta.json`` tells them apart, so the old mapping is not served as the entry."""
    root = str(tmp_path / "cache")
    cache = Cache(root)
    entry = cache.get_or_build("e", KEYS, SPECS, _fill(1.0))
    assert entry.alive()
    meta = os.path.join(root, "e", "meta.json")
    with open(meta) as fh:
        body = fh.read()
    with open(meta, "w") as fh:  # another build's meta.json beside the same keys.npy file
        fh.write(body.replace('"build": "', '"build": "0'))
    assert not entry.alive()
    assert cache.open("e", SPECS) is not entry


def test_a_damaged_build_is_removed_but_not_one_published_after_it(tmp_path: Path) -> None:
    """An open that finds an entry damaged removes that build only: another process may have
    removed it and published a sound build meanwhile, which stays."""
    cache = Cache(str(tmp_path / "cache"))
    damaged = cache.get_or_build("e", KEYS, SPECS, _fill(1.0))
    cache.discard("e")
    sound = cache.get_or_build("e", KEYS, SPECS, _fill(2.0))
    assert damaged.stamp is not None and sound.stamp != damaged.stamp
    cache._discard_build("e", damaged.stamp)
    again = Cache(str(tmp_path / "cache")).open("e", SPECS)
    assert again is not None and float(again.fixed["x0"][0]) == 2.0
    cache._discard_build("e", sound.stamp or b"")
    assert Cache(str(tmp_path / "cache")).open("e", SPECS) is None
