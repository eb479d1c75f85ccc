"""routes.yaml's YAML → Python data, fast: libyaml composes, a lean walk constructs.

PyYAML's pure-Python reader spends about 1 ms per model of a large routes.yaml, and its own
constructor, even over libyaml's nodes, most of the rest. :func:`read_fast` composes with
libyaml (``yaml.CSafeLoader``) and builds the data with a plain walk that gives what
``yaml.safe_load`` gives for the YAML a routes.yaml is made of: mappings, sequences, strings,
numbers, booleans, nulls, timestamps, aliases. For anything else (a tag it does not know,
merge keys, a duplicate key, nesting deeper than :data:`MAX_DEPTH`, text where libyaml and
PyYAML disagree (:func:`agrees`), a YAML error, no libyaml) it answers :data:`UNSURE`, and
the caller takes the careful path (``file.py``), which reads the file as PyYAML always did
and reports every error with its line.

Lines are not computed here: they are only needed for an error, and an error takes the
careful path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

FAST: Final = bool(getattr(yaml, "__with_libyaml__", False))  # else every read is careful
MAX_DEPTH: Final = 64  # deeper documents take the careful path (PyYAML recurses per level)
MAX_ALIAS_NODES: Final = 100_000  # nodes YAML aliases may add; a real table adds a few hundred
_SIZE_CAP: Final = 1 << 62  # counts stop growing here (a bomb's true size has hundreds of digits)

_STR: Final = "tag:yaml.org,2002:str"
_MAP: Final = "tag:yaml.org,2002:map"
_SEQ: Final = "tag:yaml.org,2002:seq"
# The scalar tags whose PyYAML constructor reads nothing but the scalar's text.
_SCALARS: Final = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp")
)


class Unsure:
    """The reader's answer when the careful path must decide (see the module docstring)."""

    def __repr__(self) -> str:
        return "UNSURE"


UNSURE: Final = Unsure()
Data = object  # what YAML reads to: dict, list, str, int, float, bool, None, datetime


class _Doubt(Exception):
    """Raised inside the walk: give up, the careful path decides."""


# Where libyaml takes what PyYAML refuses, or reads it otherwise (found by fuzzing the two
# against each other; tests/unit/config/test_reader.py): tabs, a byte-order mark, "?" in a
# flow collection ([x?a=1]), a block scalar's header followed by a comment with no space
# (|#); and, to be safe, the Unicode line breaks. Where libyaml refuses what PyYAML takes,
# PyYAML reads again.
_DISAGREE: Final = ("\t", "\ufeff", "\x85", "\u2028", "\u2029")
_HEADER_COMMENT: Final = re.compile(r"[|>][-+0-9]*#")


def agrees(text: str) -> bool:
    """Whether libyaml may read ``text``: it reads it as PyYAML does, marks included."""
    if not FAST or any(c in text for c in _DISAGREE):
        return False
    if "?" in text and ("[" in text or "{" in text):
        return False
    return _HEADER_COMMENT.search(text) is None


def compose(text: str) -> Node | None:
    """The document's node tree composed by libyaml (marks included); raises
    ``yaml.YAMLError`` as PyYAML does, with libyaml's wording."""
    loader = _Loader(text)
    try:
        node: Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


# Without libyaml (FAST is False) nothing composes with it; the class stays defined.
_LIBYAML: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_LIBYAML):  # type: ignore[misc,valid-type]  # the base is chosen at import
    """libyaml's composer with the safe loader's tags, resolved without the per-node work
    PyYAML spends on path resolvers, which the safe loader has none of."""

    def descend_resolver(self, current_node: Node | None, current_index: object) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                table = yaml.SafeLoader.yaml_implicit_resolvers
                for tag, regexp in table.get(value[:1], []) + table.get(None, []):
                    if regexp.match(value):
                        return str(tag)
            return _STR
        return _SEQ if kind is SequenceNode else _MAP


def read_fast(text: str, strings: dict[str, str] | None = None) -> Data | Unsure:
    """``yaml.safe_load(text)``'s data, or :data:`UNSURE` (module docstring). ``strings``: the
    strings already kept, by text; a string of the same text is that object (and a new one is
    added), so that pieces of one file read apart share their strings (``fast_path.py``)."""
    if not agrees(text):
        return UNSURE
    try:
        node = compose(text)
    except (yaml.YAMLError, RecursionError):
        return UNSURE
    if node is None:
        return None
    aliased = "&" in text  # no anchor, no alias: PyYAML refuses an alias to nothing
    if aliased and alias_problem(node) is not None:
        return UNSURE
    return construct(node, aliased, strings)


def alias_problem(root: Node) -> tuple[int | None, str] | None:
    """The line and text of what is wrong with the document's aliases, or None: they may not
    add more than MAX_ALIAS_NODES nodes once expanded (a "billion laughs" is a few lines that
    expand to 10^9), nor refer to a node containing them. Every later walk of the table (line
    index, validation) would pay for the expanded size."""
    sizes: dict[int, int] = {}  # expanded node count of each distinct node, by id
    open_nodes: set[int] = set()  # the path from the root to the node being counted
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), _SIZE_CAP)
            continue
        if id(node) in sizes:
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_nodes:
                return child.start_mark.line + 1, "a YAML alias contains itself"
            stack.append((child, False))
    added = sizes[id(root)] - len(sizes)
    if added > MAX_ALIAS_NODES:
        message = (
            f"YAML aliases expand the document by more than {MAX_ALIAS_NODES} nodes; "
            "write the repeated values out"
        )
        return None, message
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def construct(node: Node, aliased: bool, strings: dict[str, str] | None = None) -> Data | Unsure:
    """The data of a composed document, as PyYAML's ``SafeConstructor`` builds it, or
    :data:`UNSURE`. ``aliased``: the document may share nodes (it has anchors); each shared
    node is then built once, as PyYAML does. Aliases that expand too far or contain
    themselves are for the caller to refuse first (:func:`alias_problem`). ``strings``: as
    for :func:`read_fast`."""
    try:
        return _Walk(aliased, {} if strings is None else strings).build(node, 0)
    except (_Doubt, RecursionError):
        return UNSURE


class _Walk:
    """One document's construction; strings of equal text are kept once (a 10,000-model
    file repeats its backend names, server model names and version numbers)."""

    def __init__(self, aliased: bool, strings: dict[str, str]) -> None:
        self.memo: dict[int, Data] | None = {} if aliased else None
        self.strings = strings
        self.scalars = SafeConstructor()
        self.constructors: dict[str, Callable[[SafeConstructor, ScalarNode], Data]] = {
            tag: SafeConstructor.yaml_constructors[tag] for tag in _SCALARS
        }

    def build(self, node: Node, depth: int) -> Data:
        kind = node.__class__
        if kind is ScalarNode:
            value = node.value
            if node.tag == _STR:
                return self.strings.setdefault(value, value)
            construct = self.constructors.get(node.tag)
            if construct is None:
                raise _Doubt
            try:
                return construct(self.scalars, cast(ScalarNode, node))
            except Exception as exc:  # "!!int x", '!!int ""': PyYAML's own error to give
                raise _Doubt from exc
        if depth >= MAX_DEPTH:
            raise _Doubt
        memo = self.memo
        if memo is not None:
            done = memo.get(id(node))
            if done is not None:
                return done
        data: Data
        if kind is MappingNode and node.tag == _MAP:
            data = self._mapping(cast(MappingNode, node), depth + 1)
        elif kind is SequenceNode and node.tag == _SEQ:
            data = [self.build(item, depth + 1) for item in node.value]
        else:
            raise _Doubt  # !!set, !!omap, !!pairs, a local tag...
        if memo is not None:
            memo[id(node)] = data
        return data

    def _mapping(self, node: MappingNode, depth: int) -> dict[object, Data]:
        mapping: dict[object, Data] = {}
        for key_node, value_node in node.value:
            if key_node.__class__ is not ScalarNode:
                raise _Doubt  # a collection as a key: unhashable, PyYAML's error to give
            key = self.build(key_node, depth)  # a merge key ("<<") or "=" has no constructor
            mapping[key] = self.build(value_node, depth)
        if len(mapping) != len(node.value):
            raise _Doubt  # a duplicate key: the careful path names it and its line
        return mapping
