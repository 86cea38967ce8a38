"""Dynamic data sets as time-ordered Arrow tables, and a synthetic click-log stream.

Every loader returns a :class:`pyarrow.Table` sorted by event time with the canonical columns
``key`` (int64, the row's position in the source), ``ts`` (event time), ``label`` (int64) and
feature columns; see ``docs/datasets.md`` for each data set's encoding.

Example
-------
>>> from modyn_store.app.datasets import DATASETS, chunk_index, load
>>> DATASETS["reuters21578_earn"].task
'binary'
>>> t = load("elec2", "../shared/data")  # doctest: +SKIP
>>> chunk_index(t.column("ts"), DATASETS["elec2"].default_chunking)[:2]  # doctest: +SKIP
array([0, 0])
"""

from modyn_store.app.datasets import builtin as _builtin  # noqa: F401  (registers the entries)
from modyn_store.app.datasets import remote as _remote  # noqa: F401
from modyn_store.app.datasets.chunking import chunk_index, iter_slices
from modyn_store.app.datasets.download import ChecksumMismatchError, DownloadError, fetch
from modyn_store.app.datasets.registry import DATASETS, load, register
from modyn_store.app.datasets.spec import DatasetSpec
from modyn_store.app.datasets.synthetic import ClickLogConfig, synthetic_clicks

__all__ = [
    "ChecksumMismatchError",
    "ClickLogConfig",
    "DATASETS",
    "DatasetSpec",
    "DownloadError",
    "chunk_index",
    "fetch",
    "iter_slices",
    "load",
    "register",
    "synthetic_clicks",
]
