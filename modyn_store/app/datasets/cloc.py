"""CLOC (Continual LOCalization, Cai et al. 2021): pre-extracted features with timestamps.

CLOC has 39 million geo-tagged YFCC100M images in 712 classes, ordered by upload time; its
order files (labels, times, image locations) are published as torch pickles, which this library
never loads. The loader reads the same data as three NumPy arrays (``allow_pickle=False``) in a
folder — convert the order files once, where you trust them, or extract features with a model
of your choice:

- ``features.npy``: float32 ``[n, d]`` (one embedding per image),
- ``labels.npy``: int ``[n]`` (class index 0 .. 711),
- ``time.npy``: int ``[n]``, seconds since ``time_origin`` (CLOC stores seconds since 2004);
  every time, once ``time_origin`` is added, must lie in the ``datetime64[ns]`` range
  (1677-09-21 to 2262-04-11, :data:`CLOC_TS_RANGE`), which the time policies read timestamps
  in: a time outside it is refused naming the file and its first such row.

Example
-------
>>> import numpy as np, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> np.save(d / "features.npy", np.zeros((2, 3), np.float32)); np.save(d / "labels.npy", np.array([1, 0]))
>>> np.save(d / "time.npy", np.array([5, 1]))
>>> load_cloc(d).column("label").to_pylist()
[0, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from modyn_store.app.datasets._encode import finish, time_order
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["CLOC_SOURCE", "CLOC_TIME_ORIGIN", "CLOC_TS_RANGE", "load_cloc"]

CLOC_SOURCE = "https://github.com/IntelLabs/continuallearning/tree/main/CLOC"
CLOC_TIME_ORIGIN = 1_072_915_200  # 2004-01-01T00:00:00Z
#: The seconds since 1970 a loaded time may take: the whole seconds of the ``datetime64[ns]`` range
#: (1677-09-21T00:12:44 to 2262-04-11T23:47:16 UTC), in which policies read event times.
CLOC_TS_RANGE = (-9_223_372_036, 9_223_372_036)


def _load(path: Path, mmap_mode: Literal["r"] | None = None) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError) as exc:  # pickled objects, a damaged or cut-short file
        raise InvalidArgumentError("path", str(path), f"a NumPy .npy array of numbers ({exc})") from exc


def _integers(path: Path, values: np.ndarray, *, whole: bool = True) -> np.ndarray:
    """``values`` as int64. Non-finite floats raise; fractions raise when ``whole`` (class labels),
    else are rounded down (seconds)."""
    if values.dtype.kind in "iu":
        if values.dtype.kind == "u" and values.size and values.max() > np.iinfo(np.int64).max:
            raise InvalidArgumentError("path", str(path), "integers within the int64 range")
        return values.astype(np.int64)
    if values.dtype.kind == "f" and bool(np.all(np.isfinite(values))):
        if values.size and not (-(2.0**63) <= float(values.min()) and float(values.max()) < 2.0**63):
            raise InvalidArgumentError("path", str(path), "numbers within the int64 range (a cast would wrap them)")
        if not whole:
            return np.floor(values).astype(np.int64)
        if bool(np.all(values == np.round(values))):
            return values.astype(np.int64)
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    raise InvalidArgumentError("path", str(path), f"whole numbers (got dtype {values.dtype}"
                                                  f"{', with fractions or NaN' if values.dtype.kind == 'f' else ''})")


def _check_times(path: Path, seconds: np.ndarray, origin: int) -> None:
    """Refuse a time outside :data:`CLOC_TS_RANGE` once ``origin`` is added, naming its first row."""
    lo, hi = CLOC_TS_RANGE[0] - origin, CLOC_TS_RANGE[1] - origin  # Python integers: no wrap-around
    if not seconds.size or (lo <= int(seconds.min()) and int(seconds.max()) <= hi):
        return
    i64 = np.iinfo(np.int64)
    outside = (seconds < max(lo, int(i64.min))) | (seconds > min(hi, int(i64.max)))
    row = int(np.flatnonzero(outside)[0])
    raise InvalidArgumentError("path", f"{path}[{row}] = {int(seconds[row])}",
                               f"seconds since time_origin ({origin}) from {lo} to {hi}: times from 1677-09-21 to "
                               "2262-04-11 UTC (the datetime64[ns] range in which policies read event times)")


def load_cloc(path: str | Path, *, time_origin: int = CLOC_TIME_ORIGIN, mmap: bool = True) -> pa.Table:
    """Load CLOC features from a folder of ``features.npy``, ``labels.npy``, ``time.npy``.

    Columns: ``key`` (row in the arrays), ``ts`` (``timestamp[s]`` UTC), ``label`` (int64),
    ``features`` (fixed-size list of float32). ``mmap`` memory-maps the feature file while
    reading.
    """
    folder = Path(path)
    files = {n: folder / f"{n}.npy" for n in ("features", "labels", "time")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise InvalidArgumentError("path", str(path), f"a folder holding features.npy, labels.npy, time.npy (missing {missing})")
    feats = _load(files["features"], mmap_mode="r" if mmap else None)
    labels = _integers(files["labels"], _load(files["labels"]))
    seconds = _integers(files["time"], _load(files["time"]), whole=False)
    if feats.ndim != 2 or labels.shape != (feats.shape[0],) or seconds.shape != labels.shape:
        raise InvalidArgumentError(
            "path", str(path), f"features [n, d], labels [n], time [n]; got {feats.shape}, {labels.shape}, {seconds.shape}"
        )
    key = np.arange(labels.size, dtype=np.int64)
    _check_times(files["time"], seconds, int(time_origin))
    ts = pa.array(seconds + int(time_origin), type=pa.int64()).cast(pa.timestamp("s"))
    with np.errstate(over="ignore", invalid="ignore"):  # refused just below
        values = np.ascontiguousarray(feats, dtype=np.float32)
    if not bool(np.isfinite(values).all()):  # NaN, infinite or beyond the float32 range
        raise InvalidArgumentError("path", str(files["features"]), "finite features within the float32 range "
                                                                  "(NaN or infinity would make the loss NaN)")
    flat = pa.array(values.reshape(-1), pa.float32())
    cols = {"key": key, "ts": ts, "label": labels, "features": pa.FixedSizeListArray.from_arrays(flat, feats.shape[1])}
    return finish(cols, time_order(ts, key))
