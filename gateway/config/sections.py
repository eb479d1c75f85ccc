"""Where each top-level section and each model's entry lies in routes.yaml's text, so that a
reload reads again only the entries that changed.

Most routes.yaml files are in the plain block layout: top-level keys at column 0 (``backends:``,
``models:``, ...), and under ``models:`` one entry per model, each starting with its name at
the column of the first. :func:`split` finds those pieces with nothing but the lines' first
characters (a ``---`` line may open the document); for any other layout (another document
marker, a directive, a flow mapping at the top,
a key it cannot read as plain text, a line indented less than the entries that is neither
blank nor a comment) it answers None, and the whole file is read.

A piece is only ever trusted together with a reading that agrees with it: the reader checks
that the names parsed from the whole file are the entries' names, in order, or reads each new
entry alone and gives up on any doubt (``file.py``). A split in the wrong place (inside a
quoted scalar that spans lines, inside a flow collection) leaves an entry that does not parse
alone or names that do not match, and the whole file is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_TOP_LINE: Final = re.compile(r"(?m)^[^ #\r\n].*")  # a line that starts at column 0
_TOP_KEY: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?:[ ]|\r?$)")
_CONTENT: Final = re.compile(r"(?m)^( *)[^ #\r\n]")  # a line that is not blank nor a comment
_LONE_CR: Final = re.compile(r"\r(?!\n)")
_DOCUMENT_START: Final = re.compile(r"---[ ]*(?:#.*)?\r?$")
_MODELS_HEADER: Final = re.compile(r"models:[ ]*(?:#.*)?$")
_ENTRY_KEY: Final = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.\-/]*):(?:[ ]|\r?$)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Layout:
    """The file's top-level sections (key → its text, key line included) and, when the
    ``models:`` section is a block of plain entries, those entries (name, text) in order."""

    sections: dict[str, str]
    entries: list[tuple[str, str]] | None


def split(text: str) -> Layout | None:
    """The file's :class:`Layout`, or None when it is not in the plain block layout."""
    if _LONE_CR.search(text):
        return None  # a line break regular expressions do not see as one
    starts = list(_TOP_LINE.finditer(text))
    begin = 0
    if starts and _DOCUMENT_START.match(starts[0].group()):
        if _CONTENT.search(text, 0, starts[0].start()):
            return None
        begin = starts.pop(0).end()  # "---" alone: where the (one) document starts
    if not starts or _CONTENT.search(text, begin, starts[0].start()):
        return None  # indented content before the first key
    sections: dict[str, str] = {}
    for i, start in enumerate(starts):
        match = _TOP_KEY.match(start.group())
        if match is None or match.group(1) in sections:
            return None  # a document marker, a flow mapping, a quoted key, a duplicate...
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        sections[match.group(1)] = text[start.start() : end]
    models = sections.get("models")
    return Layout(sections, _entries(models) if models is not None else None)


def _entries(section: str) -> list[tuple[str, str]] | None:
    """The models section's entries, or None when it is not a block of plain entries."""
    header, _, body = section.partition("\n")
    if not _MODELS_HEADER.match(header.rstrip("\r")):
        return None  # "models: {...}" on one line, or a tag or anchor after the key
    first = _CONTENT.search(body)
    if first is None:
        return None
    indent = len(first.group(1))
    if re.search(rf"(?m)^ {{0,{indent - 1}}}[^ #\r\n]", body):
        return None  # a line indented less than the entries: not a block of entries
    starts = list(re.finditer(rf"(?m)^ {{{indent}}}(?=[^ #\r\n])", body))
    entries: list[tuple[str, str]] = []
    for i, start in enumerate(starts):
        match = _ENTRY_KEY.match(body, start.end())
        if match is None:
            return None
        end = starts[i + 1].start() if i + 1 < len(starts) else len(body)
        entries.append((match.group(1), body[start.start() : end]))
    return entries
