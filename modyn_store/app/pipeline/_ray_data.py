"""Ray Data settings the store's own Ray jobs share (:mod:`.ray_exec`, :mod:`.ray_quota`)."""

from __future__ import annotations

from typing import Any

__all__ = ["raising_errors"]


def raising_errors(ds: Any) -> Any:
    """``ds`` with its map steps raising their own exceptions: Ray Data otherwise replaces an
    exception of a ``map_batches`` function by a ``UserCodeException`` that loses its type (the
    caller turns the store's typed errors back into themselves). Only this dataset's context is
    changed, not the user's global Ray Data settings."""
    ds.context.raise_original_map_exception = True
    return ds
