"""Read YAML with the line number of every key (a safe loader plus the composed node tree).

Pipeline files are plain trees: anchors and aliases (``&a`` / ``*a``), merge keys (``<<``) and
a key given twice in one mapping are refused with a
:class:`~modyn_store.app.pipeline.errors.PipelineConfigError` naming the key and its line. Anchors
and aliases are refused on the parser's events, before any node is shared, so a small file with
nested aliases (an "alias bomb") cannot expand exponentially. Numbers and dates are read as
written: ``1e-3`` is a float (YAML 1.2; YAML 1.1 reads it as text), an unquoted date stays its
ISO text, and an integer with a leading zero (``010``: octal 8 in YAML 1.1) or a number with
colons (``1:30``: base 60) is refused.

Example
-------
>>> from modyn_store.app.pipeline.yamlsrc import read_yaml
>>> doc = read_yaml("a: 1\\nb:\\n  c: [1, 2]\\n")
>>> doc.data, doc.line(("b", "c")), doc.line(("b", "c", 1))
({'a': 1, 'b': {'c': [1, 2]}}, 3, 3)
>>> doc.line(("nope",)) is None
True
>>> read_yaml("a: 1\\nb: 2\\na: 3\\n", "p.yaml")
Traceback (most recent call last):
...
modyn_store.app.pipeline.errors.PipelineConfigError: p.yaml:3: a: duplicate key 'a' (first given at line 1); give each key once
>>> read_yaml("base: &b {epochs: 1}\\nother: *b\\n", "p.yaml")
Traceback (most recent call last):
...
modyn_store.app.pipeline.errors.PipelineConfigError: p.yaml:1: base: YAML anchors and aliases are not allowed in pipeline files (found anchor &b); write the value out
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from modyn_store.app.pipeline.errors import PipelineConfigError
from modyn_store.core._plainjson import MAX_JSON_DEPTH

__all__ = ["MAX_DEFINITION_DEPTH", "YamlDoc", "read_yaml"]

Path_ = tuple[Any, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: mappings and lists a pipeline definition may hold inside one another (below the store's limit
#: on the JSON it records with each training, which adds a level or two around them)
MAX_DEFINITION_DEPTH = MAX_JSON_DEPTH - 10


@dataclass(frozen=True)
class YamlDoc:
    """Plain YAML data and the 1-based line of each key path (``("grid", 2, "trigger")``)."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict, repr=False)
    source: str | None = None

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one (``None`` without any)."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None

    def sub(self, prefix: Path_) -> YamlDoc:
        """The document below ``prefix`` (lines re-rooted)."""
        n = len(prefix)
        data = self.data
        for k in prefix:
            data = data[k]
        lines = {p[n:]: ln for p, ln in self.lines.items() if p[:n] == tuple(prefix) and len(p) > n}
        return YamlDoc(data, lines, self.source)


def _dotted(path: Path_) -> str:
    """``("pipelines", 1, "trigger")`` -> ``"pipelines[1].trigger"`` (``"<document>"`` for the root)."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<document>"


class _Refused(Exception):
    """An anchor or alias met while composing (raised before the node is built or shared)."""

    def __init__(self, path: Path_, line: int, what: str) -> None:
        super().__init__(what)
        self.path = path
        self.line = line
        self.what = what

    def __reduce__(self) -> tuple[Any, ...]:  # crosses processes (multiprocessing, Ray, DDP) intact
        return (type(self), (self.path, self.line, self.what), self.__dict__)


_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
#: YAML 1.2's floats; checked after YAML 1.1's own, so it adds the ones YAML 1.1 reads as text:
#: an exponent without ``.`` or sign (``1e-3``, ``5E4``, ``1.0e3``) and a signed ``.5`` (``-.5``)
_EXP_FLOAT = re.compile(r"^[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$")
#: an integer with a leading zero, which YAML 1.1 reads as octal (``010`` is 8)
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9_]+$")


def _resolvers() -> dict[Any, list[tuple[str, Any]]]:
    """SafeLoader's implicit resolvers without timestamps (an unquoted ``2024-01-01`` stays the ISO
    text it was written as), plus YAML 1.2's exponent floats. New lists: PyYAML's own
    ``add_implicit_resolver`` would append to the lists it shares with ``SafeLoader``."""
    out = {ch: [(tag, rx) for tag, rx in rs if tag != _TIMESTAMP_TAG]
           for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for ch in "-+0123456789.":
        out.setdefault(ch, []).append((_FLOAT_TAG, _EXP_FLOAT))
    return {ch: rs for ch, rs in out.items() if rs}


class _TreeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases on the event stream (see the module),
    reads numbers as YAML 1.2 does where YAML 1.1 reads them as text (``1e-3``) and keeps dates
    and times as their text."""

    yaml_implicit_resolvers = _resolvers()

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[Any] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        seg: tuple[Any, ...] = ()
        if isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.ScalarNode):
            seg = (index.value,)  # a mapping's value (its key node is ``index``)
        elif isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            seg = (index,)
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _Refused(tuple(self._path) + seg, event.start_mark.line + 1, f"{kind}{anchor}")
        self._path.extend(seg)
        try:
            return super().compose_node(parent, index)
        finally:
            del self._path[len(self._path) - len(seg):]


def _check_number(node: Any, path: Path_, source: str | None) -> None:
    """Refuse a plain number YAML 1.1 reads other than it is written (``010`` as 8, ``1:30`` as 90)."""
    if node.tag not in (_INT_TAG, _FLOAT_TAG) or node.style is not None:
        return
    if ":" in node.value:
        why = "has a colon, which YAML 1.1 reads as a base-60 number"
    elif node.tag == _INT_TAG and _LEADING_ZERO.match(node.value):
        why = "has a leading zero, which YAML 1.1 reads as an octal number"
    else:
        return
    value = yaml.SafeLoader("").construct_object(node)  # what YAML 1.1 would have given
    raise PipelineConfigError(_dotted(path), f"{node.value} {why} ({value!r}); write the number without it, or "
                              f"quote it for text ('{node.value}')", line=node.start_mark.line + 1, source=source)


def _walk(loader: _TreeLoader, node: Any, path: Path_, out: dict[Path_, int], source: str | None) -> None:
    """Record the line of every key and item; refuse duplicate and merge keys (each node once) and
    numbers YAML 1.1 reads other than they are written (:func:`_check_number`)."""
    if isinstance(node, yaml.ScalarNode):
        _check_number(node, path, source)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            line = k.start_mark.line + 1
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k.start_mark.line)
            if k.tag == _MERGE_TAG:
                raise PipelineConfigError(_dotted(path + ("<<",)), "YAML merge keys (<<) are not allowed in pipeline "
                                          "files; write the keys out", line=line, source=source)
            if isinstance(k, yaml.ScalarNode):
                value = loader.construct_object(k)  # the key as the data holds it (1 and true are one key)
                if value in seen:
                    raise PipelineConfigError(_dotted(path + (key,)), f"duplicate key {value!r} (first given at line "
                                              f"{seen[value]}); give each key once", line=line, source=source)
                seen[value] = line
            out[path + (key,)] = line
            _walk(loader, v, path + (key,), out, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _walk(loader, v, path + (i,), out, source)


def read_yaml(text: str, source: str | None = None) -> YamlDoc:
    """Parse ``text`` safely (``yaml.SafeLoader``) and record the line of every key.

    Raises
    ------
    PipelineConfigError
        The text is not valid YAML, uses anchors/aliases or merge keys, or gives a key twice in
        one mapping (the error names the key and its line).
    """
    loader = _TreeLoader(text)
    lines: dict[Path_, int] = {}
    try:
        node = loader.get_single_node()
        if node is not None:
            _walk(loader, node, (), lines, source)
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise PipelineConfigError(_dotted(exc.path), f"YAML anchors and aliases are not allowed in pipeline files "
                                                     f"(found {exc.what}); write the value out",
                                  line=exc.line, source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PipelineConfigError("<document>", f"not valid YAML: {problem}", line=line, source=source) from exc
    except RecursionError:
        raise PipelineConfigError("<document>", f"nested too deeply to read (a pipeline definition may hold "
                                                f"mappings and lists at most {MAX_DEFINITION_DEPTH} levels deep)",
                                  source=source) from None
    finally:
        loader.dispose()
    return YamlDoc(data, lines, source)
