"""Errors of pipeline definitions.

Example
-------
>>> from modyn_store.app.pipeline.errors import PipelineConfigError
>>> err = PipelineConfigError("trigger.every", "expected an integer >= 1, got 0", line=7, source="p.yaml")
>>> str(err)
'p.yaml:7: trigger.every: expected an integer >= 1, got 0'
>>> isinstance(err, ValueError)
True
"""

from __future__ import annotations

from typing import Any

from modyn_store.core.errors import ModynStoreError

__all__ = ["PipelineConfigError"]


class PipelineConfigError(ModynStoreError, ValueError):
    """A pipeline or grid definition is invalid.

    Parameters
    ----------
    key:
        The dotted path of the offending key (``"trigger.every"``, ``"grid[2].selection.name"``).
    message:
        What is wrong and what would be valid.
    line:
        The 1-based line of the key in the YAML file, when the definition came from one.
    source:
        The file name, when known.
    """

    def __init__(self, key: str, message: str, *, line: int | None = None, source: str | None = None) -> None:
        self.key = key
        self.message = message
        self.line = line
        self.source = source
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(f"{where}{key}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (multiprocessing, Ray, DDP) intact
        return (_rebuild_config_error, (type(self), self.key, self.message, self.line, self.source),
                self.__dict__)


def _rebuild_config_error(cls: type[PipelineConfigError], key: str, message: str, line: int | None,
                          source: str | None) -> PipelineConfigError:
    """A :class:`PipelineConfigError` again, from its pickled fields (``line`` and ``source``
    are keyword-only)."""
    return cls(key, message, line=line, source=source)

