"""Less memory per model (issue 16): the objects of a route table made smaller once validated.

**One set of field names shared by equal objects.** pydantic keeps on every model object the
set of the fields its input named (``model_fields_set``): a 216-byte ``set`` on each
``Model`` and ``Version``, about 4 MiB at 10,000 models. The objects of a route table are
frozen, and pydantic never changes such a set in place for a frozen model (``model_copy``
copies it before it adds to it), so objects whose sets are equal can hold the same one.

**Attribute dicts that share their keys.** pydantic gives every object a dict of its fields
(``__dict__``), each with its own table of keys: 272 bytes for a ``Model`` (9 fields) or a
``Version`` (6). CPython keeps the attributes of instances of one class in dicts that share
one table of keys (a "split" dict, PEP 412), holding only the values: the same fields made
such a dict take about half. The dict is an ordinary ``dict`` (pydantic and every reader see
the same mapping, in the same order); only its layout differs, and a dict that ever gains
another key becomes an ordinary one again. About 250 bytes less per model of one version.
A model's ``versions`` dict is made the same way while the worker has seen few version names
(:data:`VERSION_NAMES`: "1", "2"... in most fleets): about 100 bytes less for one version.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from gateway.config.model import Model, RouteTable, Version

VERSION_NAMES: Final = 8  # the version names whose versions dicts share their keys, at most


class _ModelFields:
    """Never used as such: its instances' attribute dicts share the keys of a Model's fields."""


class _VersionFields:
    """The same for a Version's fields."""


class _VersionNames:
    """The same for models' ``versions``, keyed by version name (see :func:`_versions`)."""


_version_names: set[str] = set()  # the names _VersionNames's dicts share (never shrinks)


FieldSets = dict[frozenset[str], set[str]]
"""The field sets kept so far, by their fields: what equal sets share (one load's)."""


def compact(table: RouteTable) -> None:
    """Make every model and version of ``table`` smaller (module docstring)."""
    shared: FieldSets = {}
    for model in table.models.values():
        compact_model(model, shared)


def compact_model(model: Model, shared: FieldSets) -> Model:
    """Make ``model`` and its versions smaller, as soon as validated (the fast path does it
    run by run: the load's peak never holds every model at its full size); returns it."""
    for version in model.versions.values():
        _share(version, shared, _VersionFields)
    _share(model, shared, _ModelFields, {"versions": _versions(model.versions)})
    return model


def _share(
    obj: BaseModel, shared: FieldSets, shape: type[object], values: dict[str, object] | None = None
) -> None:
    """``obj`` with the one field set of its fields, and its attribute dict made anew as one of
    ``shape``'s, with ``values`` instead of what it holds for those fields."""
    fields: set[str] = obj.__pydantic_fields_set__
    same = shared.setdefault(frozenset(fields), fields)
    if same is not fields:
        object.__setattr__(obj, "__pydantic_fields_set__", same)
    holder = shape()
    for key, value in obj.__dict__.items():
        setattr(holder, key, value if values is None else values.get(key, value))
    object.__setattr__(obj, "__dict__", holder.__dict__)


def _versions(versions: dict[str, Version]) -> dict[str, Version]:
    """``versions`` in a dict sharing its keys with the other models' (the same mapping, in
    the same order), or itself once the worker has seen more than :data:`VERSION_NAMES`
    names (the values of a dict with shared keys have room for all of them) or for a name
    that could be an attribute of the holder's class."""
    if not _version_names.issuperset(versions):  # a name not seen yet
        names = _version_names.union(versions)
        if len(names) > VERSION_NAMES or any(name.startswith("__") for name in versions):
            return versions
        _version_names.update(names)
    holder = _VersionNames()
    for name, version in versions.items():
        setattr(holder, name, version)
    return holder.__dict__
