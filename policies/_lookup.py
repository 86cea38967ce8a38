"""Policy names: the registry, installed entry points and dotted paths, resolved to classes.

:func:`get` looks a name up in :data:`REGISTRY` (filled by ``policies.base.register``), then among
the installed entry points of :data:`ENTRY_POINT_GROUP`; a dotted path is imported only from a
module the user installed as such an entry point or from this package. ``policies.base``
re-exports every public name here.

Example
-------
>>> from policies._lookup import get
>>> get("update", "periodic_retrain").__name__
'PeriodicRetrain'
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modyn_store.core.errors import InvalidArgumentError

if TYPE_CHECKING:
    from policies.base import Policy

__all__ = ["BASES", "ENTRY_POINT_GROUP", "KINDS", "REGISTRY", "check_registered", "get"]

KINDS: tuple[str, ...] = ("trigger", "selection", "update")

#: kind -> the base class of its policies (``Trigger``, ...), set by ``policies.base``.
BASES: dict[str, type[Policy]] = {}

#: the method a policy class of each kind must implement (the base's raises NotImplementedError)
_IMPLEMENTS = {"trigger": "_fire", "selection": "_select", "update": "_decide"}
_PUBLIC = {"trigger": "fire", "selection": "select", "update": "decide"}


def _is_abstract(kind: str, cls: type[Policy]) -> bool:
    """Whether ``cls`` implements neither the kind's method nor its public entry (a bare base
    class such as ``Trigger``): built from a config it would only fail when first used."""
    base = BASES[kind]
    return all(getattr(cls, m, None) is getattr(base, m) for m in (_IMPLEMENTS[kind], _PUBLIC[kind]))

#: kind -> name -> class, filled by :func:`register`.
REGISTRY: dict[str, dict[str, type[Policy]]] = {k: {} for k in KINDS}


def _check_kind(kind: str) -> type[Policy]:
    if kind not in BASES:
        raise InvalidArgumentError("kind", kind, f"one of {list(KINDS)}")
    return BASES[kind]


#: The entry-point group through which an installed package provides its own policies: each
#: entry point maps a name to ``"module:Class"`` (see ``docs/policies.md``).
ENTRY_POINT_GROUP = "modyn_store.policies"

def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed entry points of :data:`ENTRY_POINT_GROUP` by name (the first of a name wins).

    Reading them loads nothing: only the distributions' metadata is read.
    """
    out: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        out.setdefault(ep.name, ep)
    return out


def _choices(kind: str, eps: Mapping[str, importlib.metadata.EntryPoint]) -> str:
    """The valid values of a ``name`` of ``kind``, in words."""
    return (f"one of the registered {kind} names {sorted(REGISTRY[kind])}, an installed "
            f"{ENTRY_POINT_GROUP!r} entry point {sorted(eps)}, or 'module.Class' naming a "
            f"{BASES[kind].__name__} subclass in such an entry point's module or in the policies "
            f"package")


def _is_policy_module(module_name: str) -> bool:
    return module_name == "policies" or module_name.startswith("policies.")


def _load_entry_point(kind: str, name: str, ep: importlib.metadata.EntryPoint) -> type[Policy]:
    base = BASES[kind]
    try:
        cls = ep.load()
    except Exception as exc:  # the user's package failed to import: say which entry point
        raise InvalidArgumentError(
            "name", name, f"an entry point of {ENTRY_POINT_GROUP!r} that loads; {ep.value!r} "
                          f"raised {type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InvalidArgumentError(
            "name", name, f"an entry point of {ENTRY_POINT_GROUP!r} naming a {base.__name__} "
                          f"subclass; {ep.value!r} is not one")
    return cls


def _import_dotted(kind: str, path: str,
                   eps: Mapping[str, importlib.metadata.EntryPoint]) -> type[Policy]:
    """The class a dotted path names, imported only from a module the user registered.

    Allowed modules: the module of an installed :data:`ENTRY_POINT_GROUP` entry point, and the
    modules of the ``policies`` package. Anything else is refused before it is imported (importing
    a module runs its top-level code).
    """
    base = BASES[kind]
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    expected = _choices(kind, eps)
    if not module_name or not attr.isidentifier():
        raise InvalidArgumentError("name", path, expected)
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise InvalidArgumentError("name", path, expected)
    registered = {ep.module for ep in eps.values()}
    if module_name not in registered and not _is_policy_module(module_name):
        raise InvalidArgumentError(
            "name", path, f"{expected} (module {module_name!r} is not installed as a "
                          f"{ENTRY_POINT_GROUP!r} entry point, so it is not imported)")
    try:
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):  # a parent is not a package, or is missing
        found = False
    if not found:
        raise InvalidArgumentError("name", path, f"{expected} (no module {module_name!r})")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InvalidArgumentError("name", path, f"{expected} ({path!r} is not a "
                                                 f"{base.__name__} subclass)")
    if _is_abstract(kind, cls):
        raise InvalidArgumentError("name", path, f"{expected} ({path!r} is an abstract base: it "
                                                 f"does not implement {_IMPLEMENTS[kind]})")
    return cls


def _entry_point_name(cls: type[Policy]) -> str | None:
    """The name of an installed entry point whose (already imported) target is ``cls``."""
    for name, ep in _entry_points().items():
        obj: Any = sys.modules.get(ep.module)  # never imported here
        for part in ep.attr.split(".") if ep.attr else []:
            obj = getattr(obj, part, None)
        if obj is cls:
            return name
    return None


def get(kind: str, name: str) -> type[Policy]:
    """The policy class registered as ``name`` of ``kind``, or one an installed package provides.

    ``name`` is looked up in :data:`REGISTRY`, then among the installed entry points of group
    :data:`ENTRY_POINT_GROUP` (``name = "module:Class"``). A dotted path ``"module.Class"`` is
    imported only when ``module`` is such an entry point's module or a module of this package;
    any other name is refused (:class:`InvalidArgumentError` naming ``name``, listing the valid
    choices) without importing anything, since importing a module runs its code.

    Example
    -------
    >>> from policies.base import get
    >>> get("selection", "uniform").__name__
    'Uniform'
    >>> get("trigger", "policies.data_amount.DataAmount").__name__
    'DataAmount'
    >>> get("selection", "os.system")
    Traceback (most recent call last):
    ...
    modyn_store.core.errors.InvalidArgumentError: invalid name='os.system': expected one of the registered selection names [...
    """
    _check_kind(kind)
    if isinstance(name, str) and name in REGISTRY[kind]:
        return REGISTRY[kind][name]
    eps = _entry_points()
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("name", name, _choices(kind, eps))
    if name in eps:
        return _load_entry_point(kind, name, eps[name])
    if "." in name or ":" in name:
        return _import_dotted(kind, name, eps)
    raise InvalidArgumentError("name", name, _choices(kind, eps))


def check_registered(field: str, kind: str, value: Any) -> str | None:
    """``value`` if it is ``None`` or a name :func:`get` resolves for ``kind`` (a selection
    ``scope`` of an update policy); else :class:`InvalidArgumentError` naming ``field``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(field, value, f"None or {_choices(kind, _entry_points())}")
    try:
        get(kind, value)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(field, value, exc.expected) from None
    return value
