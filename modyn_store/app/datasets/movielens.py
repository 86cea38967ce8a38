"""Loader of MovieLens-100K as an implicit-feedback click stream (1997-09 .. 1998-04).

Each rating is one event; the click proxy ``label`` is 1 when ``rating >= 4`` (the rating itself is
dropped: it is the answer). ``user_id`` and ``movie_id`` are int64 categorical ids (for embedding
models); user attributes and, when the items file is present, the 19 genre flags of the movie are
encoded into ``features``.

Example
-------
>>> from modyn_store.app.datasets.movielens import load_movielens  # doctest: +SKIP
>>> t = load_movielens("../shared/data")  # doctest: +SKIP
>>> t.num_rows  # doctest: +SKIP
100000
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from modyn_store.app.datasets._encode import codes, feature_vector, finish, one_hot_codes, read_parquet, resolve_file, time_order
from modyn_store.core.errors import InvalidArgumentError

__all__ = ["GENRES", "OCCUPATIONS", "load_movielens"]

OCCUPATIONS = (
    "administrator", "artist", "doctor", "educator", "engineer", "entertainment", "executive",
    "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none", "other", "programmer",
    "retired", "salesman", "scientist", "student", "technician", "writer",
)  # fmt: skip
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


def load_movielens(
    path: str | Path, *, items: str | Path | None = None, threshold: int = 4, standardize: bool = True, warmup: float = 0.1
) -> pa.Table:
    """Load MovieLens-100K ratings as time-ordered implicit clicks.

    Parameters
    ----------
    path:
        ``movielens100k.parquet`` or the folder holding it.
    items:
        The items file (``movielens100k_items.parquet``); by default looked up next to the
        ratings file. When it is absent the genre block is left out of ``features``. When it is
        there it must hold each rated movie exactly once: a rated ``movie_id`` missing from it
        (which would get no genre at all) or listed twice is refused naming the id.
    threshold:
        ``label = rating >= threshold``.
    standardize, warmup:
        Standardize ``age`` with the statistics of the first ``warmup`` share of the stream.

    Returns
    -------
    pyarrow.Table
        ``key`` (source row), ``ts`` (``timestamp[s]``), ``label``, ``user_id``, ``movie_id``,
        ``age`` (float32), ``gender`` (int64: 0 = F, 1 = M), ``occupation`` (int64 index in
        :data:`OCCUPATIONS`; -1 for a value outside the list, with an all-zero one-hot), ``features`` = standardized age, gender one-hot (2), occupation
        one-hot (21) and the movie's genre flags (19, when items are available): 43 values.
    """
    ratings_file = resolve_file(path, "movielens100k.parquet")
    raw = read_parquet(ratings_file, ("user_id", "movie_id", "rating", "timestamp", "age", "gender", "occupation"),
                       complete=("user_id", "movie_id", "rating", "timestamp", "age"))  # no label / NaN features
    key = np.arange(raw.num_rows, dtype=np.int64)
    ts = raw.column("timestamp").to_numpy().astype("datetime64[s]")
    movie_id = raw.column("movie_id").to_numpy().astype(np.int64)
    gender_code = codes(raw.column("gender"), ("F", "M"))
    occupation_code = codes(raw.column("occupation"), OCCUPATIONS)
    gender = one_hot_codes(gender_code, 2)
    occupation = one_hot_codes(occupation_code, len(OCCUPATIONS))
    age = raw.column("age").to_numpy().astype(np.float32)
    extra = [gender, occupation]
    items_file = Path(items) if items is not None else ratings_file.with_name("movielens100k_items.parquet")
    if items is not None or items_file.is_file():
        item_cols = ("movie_id", *GENRES)
        item_table = read_parquet(resolve_file(items_file, "movielens100k_items.parquet"), item_cols,
                                  complete=item_cols)
        ids = item_table.column("movie_id").to_numpy().astype(np.int64)
        for name, found in (("path", movie_id), ("items", ids)):
            if found.size and found.min() < 0:  # a negative id would index the genres of another movie
                raise InvalidArgumentError(name, str(ratings_file if name == "path" else items_file),
                                           f"non-negative movie_id values (found {int(found.min())})")
        extra.append(_genres(movie_id, ids, item_table, ratings_file, items_file))
    order = time_order(pa.array(ts, type=pa.timestamp("s")), key)
    cols: dict[str, pa.Array | np.ndarray] = {
        "key": key[order],
        "ts": pa.array(ts[order], type=pa.timestamp("s")),
        "label": (raw.column("rating").to_numpy() >= threshold).astype(np.int64)[order],
        "user_id": raw.column("user_id").to_numpy().astype(np.int64)[order],
        "movie_id": movie_id[order],
        "age": age[order],
        "gender": gender_code[order],
        "occupation": occupation_code[order],
    }
    cols["features"] = feature_vector(
        cols["age"][:, None], np.concatenate(extra, axis=1)[order], standardize=standardize, warmup=warmup
    )
    return finish(cols, np.arange(raw.num_rows))


def _genres(movie_id: np.ndarray, ids: np.ndarray, items: pa.Table, ratings_file: Path, items_file: Path) -> np.ndarray:
    """The genre flags ``[n, 19]`` of each rated movie; every rated movie must be in the items once."""
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size < ids.size:
        twice = uniq[counts > 1]
        raise InvalidArgumentError("items", str(items_file), f"each movie_id once (movie_id {int(twice[0])} is listed "
                                                             f"{int(counts[counts > 1][0])} times)")
    missing = np.setdiff1d(movie_id, ids)
    if missing.size:
        more = f" and {missing.size - 1} more" if missing.size > 1 else ""
        raise InvalidArgumentError("items", str(items_file), f"a row for every movie rated in {ratings_file} "
                                                             f"(movie_id {int(missing[0])}{more} missing)")
    flags = np.stack([items.column(g).to_numpy().astype(np.float32) for g in GENRES], axis=1)
    lookup = np.zeros((int(max(ids.max(), movie_id.max())) + 1, len(GENRES)), dtype=np.float32)
    lookup[ids] = flags
    return lookup[movie_id]
