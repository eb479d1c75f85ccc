"""The fast path from routes.yaml's text to a validated :class:`RouteTable`, or None when the
careful path (``file.py``) must decide.

It reads the file with libyaml and a lean constructor (``reader.py``), validates it once, and
keeps each model entry's text with its validated model (``sections.py``). On the next load a
model whose entry is the same text is that very :class:`Model`, not validated again: a
one-line change in a 10,000-model file reads and validates one entry, and everything built
from an unchanged model (its targets, its place in the live table) can be kept by identity.
Validating a model depends on nothing but its own entry (references to backends are checked
for the whole table, carried-over models included), so the table is the one a full reading
would give.

Any doubt (an error, a YAML feature the lean reader leaves to PyYAML, a layout it cannot
split) answers None: errors, with their lines, are only ever reported by the careful path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import ValidationError

from gateway.config import reader, sections
from gateway.config.model import Model, RouteTable

Entries = Mapping[str, Model]
"""A model entry's text (``sections.split``) → the model validated from it."""

_FEW: Final = 64  # up to this many new entries (or an eighth) are read one by one


def read_table(text: str, known: Entries) -> tuple[RouteTable, dict[str, Model]] | None:
    """The table ``text`` holds and its entries (for the next load), reusing the models of
    ``known`` entries; None when the careful path must decide."""
    if not reader.agrees(text):
        return None
    layout = sections.split(text)
    entries = layout.entries if layout is not None else None
    data: dict[object, object] | None = None
    if layout is not None and entries is not None and known:
        fresh = sum(1 for _, entry in entries if entry not in known)
        if fresh <= max(_FEW, len(entries) // 8):
            data = _assemble(layout, entries, known)
    if data is None:
        whole = reader.read_fast(text)
        if not isinstance(whole, dict):
            return None
        data = whole
        if entries is not None and not _carry_over(data.get("models"), entries, known):
            entries = None
    try:
        table = RouteTable.model_validate(data)
    except ValidationError:
        return None
    kept = {entry: table.models[name] for name, entry in entries} if entries else {}
    return table, kept


def _assemble(
    layout: sections.Layout, entries: list[tuple[str, str]], known: Entries
) -> dict[object, object] | None:
    """The file's data, each section read alone and each model entry either known or read
    alone; None at the first doubt."""
    data: dict[object, object] = {}
    for key, text in layout.sections.items():
        if key != "models":
            value = _single(key, text)
            if value is reader.UNSURE:
                return None
            data[key] = value
    models: dict[object, object] = {}
    for name, text in entries:
        model = known.get(text)
        value = model if model is not None else _single(name, text)
        if value is reader.UNSURE or name in models:
            return None  # a duplicate name: the careful path says where
        models[name] = value
    data["models"] = models
    return data


def _single(key: str, text: str) -> object:
    """The value of a piece of the file that holds the one key ``key``, or UNSURE."""
    value = reader.read_fast(text)
    if not isinstance(value, dict) or len(value) != 1 or key not in value:
        return reader.UNSURE
    return value[key]


def _carry_over(models: object, entries: list[tuple[str, str]], known: Entries) -> bool:
    """Put the known models in place of their entries' data, once the whole file's model
    names are the entries' names in order (the split is right); False when they are not."""
    if not isinstance(models, dict) or list(models) != [name for name, _ in entries]:
        return False
    for name, text in entries:
        model = known.get(text)
        if model is not None:
            models[name] = model
    return True
