"""The fast path from routes.yaml's text to a validated :class:`RouteTable`, or None when the
careful path (``file.py``) must decide.

It reads the file with libyaml and a lean constructor (``reader.py``), piece by piece where
the layout allows (``sections.py``), validates it once, and keeps each model entry's text with
its validated model. On the next load a
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

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

from pydantic import ValidationError

from gateway.config import reader, sections
from gateway.config.compact import FieldSets, compact, compact_model
from gateway.config.model import Model, RouteTable

Entries = Mapping[bytes, Model]
"""A model entry's digest (:func:`entry_digest` of its text, ``sections.split``) → the model
validated from it. The digest, not the text, is what is kept between loads: 16 bytes per model
instead of the entry's text."""

_RUN: Final = 250  # new entries read together: libyaml's nodes for a run at a time


def read_table(
    text: str, known: Entries, names: Iterable[str] = ()
) -> tuple[RouteTable, dict[bytes, Model]] | None:
    """The table ``text`` holds and its entries (for the next load), reusing the models of
    ``known`` entries; None when the careful path must decide. ``names``: the model names of
    the last load, kept as those objects where they stay (a model carried over keeps its
    name, as its targets do)."""
    if not reader.agrees(text):
        return None
    # An anchor makes one entry's value depend on another's text (an alias, a merge key),
    # and PyYAML refuses an anchor twice in a file: such a file is read whole.
    layout = sections.split(text) if "&" not in text else None
    if layout is not None and layout.entries is not None:
        digests = [entry_digest(entry) for _, entry in layout.entries]  # once per entry
        table = _by_pieces(layout, layout.entries, digests, known, names)
        if table is not None:
            pairs = zip(layout.entries, digests, strict=True)
            return table, {digest: table.models[name] for (name, _), digest in pairs}
    whole = reader.read_fast(text)  # another layout, or a split in the wrong place
    if not isinstance(whole, dict):
        return None
    try:
        table = RouteTable.model_validate(whole)
    except ValidationError:
        return None
    compact(table)
    return table, {}


def entry_digest(text: str) -> bytes:
    """A model entry's identity across loads: BLAKE2b-128 of its text (a collision, which
    would carry a model over unchanged, is as likely as guessing a 128-bit key)."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _by_pieces(
    layout: sections.Layout,
    entries: list[tuple[str, str]],
    digests: list[bytes],
    known: Entries,
    names: Iterable[str],
) -> RouteTable | None:
    """The table read piece by piece (``digests``: each entry's, in order): each top-level
    section alone, the known entries not at all, the others in runs of up to :data:`_RUN` (so
    the nodes of a 100,000-model file never all exist at once); None at the first doubt.

    Every piece shares one set of strings (issue 16): a model's name is one object, whether
    the table's key, its entry's or the server model name its version gives (most often the
    same text), and a carried-over model keeps the name object of its last load."""
    strings = {name: name for name in names}
    shared: FieldSets = {}
    data: dict[str, object] = {}
    for key, text in layout.sections.items():
        if key != "models":
            value = reader.read_fast(text, strings)
            if not isinstance(value, dict) or list(value) != [key]:
                return None
            data[key] = value[key]
    models: dict[str, Model | None] = {}
    run: list[tuple[str, str]] = []
    for (given, text), digest in zip(entries, digests, strict=True):
        name = strings.setdefault(given, given)
        if name in models:
            return None  # a duplicate: the careful path says where
        model = models[name] = known.get(digest)  # None: to read (its place kept)
        if model is None:
            run.append((name, text))
            if len(run) == _RUN:
                if not _read_run(run, models, strings, shared):
                    return None
                run = []
    if run and not _read_run(run, models, strings, shared):
        return None
    data["models"] = models
    try:
        return RouteTable.model_validate(data)
    except ValidationError:
        return None


def _read_run(
    run: list[tuple[str, str]],
    models: dict[str, Model | None],
    strings: dict[str, str],
    shared: FieldSets,
) -> bool:
    """Read and validate consecutive new entries into ``models``, each made smaller at once
    (``compact.py``); False at any doubt (the run does not read as exactly its entries, in
    order, or a model is invalid)."""
    value = reader.read_fast("".join(text for _, text in run), strings)
    if not isinstance(value, dict) or list(value) != [name for name, _ in run]:
        return False
    try:
        for name, raw in value.items():
            models[name] = compact_model(Model.model_validate(raw), shared)
    except ValidationError:
        return False
    return True
