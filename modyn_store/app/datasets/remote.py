"""Registry entries of the large community benchmarks, with download into a cache folder.

Criteo's day files have a public URL (:data:`~modyn_store.app.datasets.criteo.CRITEO_URL`). The
other sources sit behind pages that need a sign-in (Kaggle) or publish no stable archive URL, so
their loaders take either ``path`` (a local copy) or ``url`` (any http(s) mirror you choose) plus
an optional ``sha256`` that the download is verified against. No checksum is recorded where the
publisher gives none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa

from modyn_store.app.datasets.cloc import CLOC_SOURCE, CLOC_TIME_ORIGIN, load_cloc
from modyn_store.app.datasets.criteo import CRITEO_HOMEPAGE, load_criteo
from modyn_store.app.datasets.download import default_cache_dir, fetch, safe_filename
from modyn_store.app.datasets.registry import register
from modyn_store.app.datasets.spec import DatasetSpec
from modyn_store.app.datasets.wildtime import (
    ARXIV_SOURCE,
    HUFFPOST_SOURCE,
    YEARBOOK_SOURCE,
    load_arxiv,
    load_huffpost,
    load_yearbook,
)
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["load_arxiv_source", "load_cloc_source", "load_huffpost_source", "load_yearbook_source", "resolve_source"]


def resolve_source(
    name: str, path: str | Path | None, url: str | None, sha256: str | None, cache_dir: str | Path | None
) -> Path:
    """``path`` when given, else ``url`` fetched (and verified) into ``cache_dir`` (default:
    :func:`~modyn_store.app.datasets.download.default_cache_dir` ``/ <name>``)."""
    if path is not None:
        return Path(path)
    if url is None:
        raise InvalidArgumentError("path", None, f"a local copy of {name!r}, or url= to download one")
    filename = safe_filename(Path(urlparse(url).path).name)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / safe_filename(name)
    return fetch(url, folder / filename, sha256=sha256)


def load_yearbook_source(
    path: str | Path | None = None, *, url: str | None = None, sha256: str | None = None,
    cache_dir: str | Path | None = None, size: int = 32,
) -> pa.Table:  # fmt: skip
    """Yearbook from a local folder/archive or a downloaded ``.tar.gz`` (see :func:`load_yearbook`)."""
    return load_yearbook(resolve_source("yearbook", path, url, sha256, cache_dir), size=size)


def load_huffpost_source(
    path: str | Path | None = None, *, url: str | None = None, sha256: str | None = None,
    cache_dir: str | Path | None = None, categories: Sequence[str] | None = None, with_description: bool = False,
) -> pa.Table:  # fmt: skip
    """HuffPost from a local or downloaded JSON lines file (see :func:`load_huffpost`)."""
    file = resolve_source("huffpost", path, url, sha256, cache_dir)
    return load_huffpost(file, categories=categories, with_description=with_description)


def load_arxiv_source(
    path: str | Path | None = None, *, url: str | None = None, sha256: str | None = None,
    cache_dir: str | Path | None = None, categories: Sequence[str] | None = None,
) -> pa.Table:  # fmt: skip
    """arXiv from a local or downloaded metadata JSON lines file (see :func:`load_arxiv`)."""
    return load_arxiv(resolve_source("arxiv", path, url, sha256, cache_dir), categories=categories)


def load_cloc_source(
    path: str | Path | None = None, *, url: str | None = None, sha256: Mapping[str, str] | None = None,
    cache_dir: str | Path | None = None, time_origin: int = CLOC_TIME_ORIGIN,
) -> pa.Table:  # fmt: skip
    """CLOC features from a local folder, or ``<url>/{features,labels,time}.npy`` downloaded.

    ``sha256`` maps ``"features"``, ``"labels"``, ``"time"`` to the expected digests.
    """
    if path is None:
        if url is None:
            raise InvalidArgumentError("path", None, "a folder of CLOC arrays, or url= to download them")
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "cloc"
        for part in ("features", "labels", "time"):
            fetch(f"{url.rstrip('/')}/{part}.npy", folder / f"{part}.npy", sha256=(sha256 or {}).get(part))
        path = folder
    return load_cloc(path, time_origin=time_origin)


register(DatasetSpec(
    name="criteo_1tb",
    task="binary",
    time="int64 day index 0 .. 23 (rows chronological within a day)",
    feature_columns=(),
    n_classes=2,
    n_features=None,
    source_url=CRITEO_HOMEPAGE,
    license="Criteo 1TB click logs: CC BY-NC-SA 4.0 (non-commercial)",
    default_chunking="ts:1",
    filename="day_0.gz",
    description="Click (1) on a display ad; i1..i13 int64 counts (missing 0), c1..c26 hashed ids (missing -1).",
    loader=load_criteo,
    categorical_columns=tuple(f"c{k}" for k in range(1, 27)),
))
register(DatasetSpec(
    name="yearbook",
    task="binary",
    time="int64 year of the portrait (1905-2013)",
    feature_columns=(),
    n_classes=2,
    n_features=None,
    source_url=YEARBOOK_SOURCE,
    license="see the source page (Wild-Time lists Yearbook under the MIT License)",
    default_chunking="year",
    filename="faces_aligned_small_mirrored_co_aligned_cropped_cleaned.tar.gz",
    description="Gender (0 = F, 1 = M) from a 32 x 32 grayscale portrait in `image`.",
    loader=load_yearbook_source,
))
register(DatasetSpec(
    name="huffpost",
    task="multiclass",
    time="timestamp[s] of the publication day",
    feature_columns=(),
    n_classes=None,
    n_features=None,
    source_url=HUFFPOST_SOURCE,
    license="see the source page (Wild-Time lists HuffPost as CC0)",
    default_chunking="year",
    filename="News_Category_Dataset_v3.json",
    description="News category from the headline in `text`; classes = sorted categories unless given.",
    loader=load_huffpost_source,
))
register(DatasetSpec(
    name="arxiv",
    task="multiclass",
    time="timestamp[s] (UTC) of the first version",
    feature_columns=(),
    n_classes=None,
    n_features=None,
    source_url=ARXIV_SOURCE,
    license="arXiv metadata: CC0",
    default_chunking="year",
    filename="arxiv-metadata-oai-snapshot.json",
    description="Primary category from the title in `text`; classes = sorted categories unless given.",
    loader=load_arxiv_source,
))
register(DatasetSpec(
    name="cloc",
    task="multiclass",
    time="timestamp[s] (UTC) of the upload",
    feature_columns=(),
    n_classes=712,
    n_features=None,
    source_url=CLOC_SOURCE,
    license="YFCC100M images under their Creative Commons licenses; see the source page",
    default_chunking="year",
    filename="features.npy",
    description="Geo-location class of an image from its pre-extracted `features` vector.",
    loader=load_cloc_source,
))
