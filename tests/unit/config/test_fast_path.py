"""The fast path reads every routes.yaml as the reader before it did (issue 16): the same table
for a valid file, the same problems at the same lines for an invalid one, with or without the
last load's models carried over, with or without libyaml. The reference is that reader,
kept as it was (legacy_reader.py). And a reload keeps an unchanged model's very object."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import reader, sections
from gateway.config.file import LoadedConfig, parse_config
from gateway.config.model import RouteTable
from gateway.errors import ConfigError
from tests.support import REPO
from tests.unit.codecs.properties import examples
from tests.unit.config.legacy_reader import parse_legacy
from tests.unit.config.test_file import BACKEND, CASES, MODEL_TWO_VERSIONS

Outcome = tuple[str, object]


def new_reading(text: str, previous: LoadedConfig | None = None) -> Outcome:
    try:
        return "table", parse_config(text, "routes.yaml", previous).table
    except ConfigError as exc:
        return "invalid", [str(issue) for issue in exc.issues]
    except (ValueError, IndexError) as exc:  # PyYAML's own, for "!!int x", raised by both
        return "raised", type(exc).__name__


def old_reading(text: str) -> Outcome:
    try:
        return "table", parse_legacy(text, "routes.yaml")
    except ConfigError as exc:
        return "invalid", [str(issue) for issue in exc.issues]
    except (ValueError, IndexError) as exc:
        return "raised", type(exc).__name__


def repository_files() -> Iterator[str]:
    for path in [REPO / "routes.yaml", *sorted((REPO / "deploy").rglob("*.y*ml"))]:
        yield path.read_text(encoding="utf-8")


ODD = [  # what the parser tests pin, and the YAML the fast path leaves to the careful one
    "backends:\n  a:\n    kind: triton: x\n",
    "backends:\n  a:\n\tkind: triton\n",
    "backends:\n  - a\n  b: 1\n",
    "backends:\n  a: {kind: triton\n\nmodels: {}\n",
    *("- 1\n- 2\n", "just text\n", "42\n", "", "# only a comment\n", "   \n\n"),
    "backends:\n  a: {kind: kserve, urls: ['http://h:1']}\n  a: {kind: kserve, urls: ['http://h:2']}\n",
    BACKEND + "models:\n  m:\n    versions:\n      '1': &v {backend: a}\n      '2': {<<: *v}\n",
    BACKEND
    + "models:\n  m: {versions: {'1': {backend: a}}}\n  m: {versions: {'2': {backend: a}}}\n",
    BACKEND + 'models:\n  m:\n    versions:\n      "1": {backend: a, name: "x\n  n: y"}\n',
    BACKEND + "models:\n  m: {versions: {'1': {backend: a}},\n  n: 1}\n",
    "a: &a [*a]\n",
    "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"  # a billion laughs, 9^9 nodes once expanded
    + "".join(
        f"{n}: &{n} [{', '.join([f'*{b}'] * 9)}]\n"
        for b, n in zip("abcdefgh", "bcdefghi", strict=True)
    ),
    "a: !!int x\n",
    "[" * 100 + "]" * 100,
    "---\n" + BACKEND + "---\nmodels: {}\n",
    "--- |\n  text\n",
    "---\n" + BACKEND + "models:\n  m: {versions: {'1': {backend: a}}}\n...\n",
    BACKEND.replace("\n", "\r\n") + "models:\r\n  m: {versions: {'1': {backend: a}}}\r\n",
    BACKEND + "models:\r  m: {versions: {'1': {backend: a}}}\r",
    BACKEND + "routes: [{path: /x?y/, backend: a}]\n",
]
CORPUS = [*(case.values[0] for case in CASES), *ODD, *repository_files()]


@pytest.mark.parametrize("text", CORPUS)
def test_every_file_reads_as_it_did(text: str) -> None:
    assert new_reading(text) == old_reading(text)


@pytest.mark.parametrize("text", CORPUS)
def test_without_libyaml_too(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "FAST", False)
    assert new_reading(text) == old_reading(text)


def big_file(count: int, seed: int = 16) -> str:
    """``count`` models in the shapes operators write them: one line each, blocks, comments,
    several versions with a split, a multi-line string; three backends and a passthrough."""
    rng = random.Random(seed)
    lines = [
        "# generated (tests/unit/config/test_fast_path.py)\n",
        "backends:\n",
        "  a: {kind: kserve, urls: ['http://127.0.0.1:1'], health: {interval: 60s}}\n",
        "  b:\n    kind: triton\n    urls:\n      - http://127.0.0.1:2\n",
        "  web: {kind: http, urls: ['http://127.0.0.1:3']}\n",
        "models:\n",
    ]
    for i in range(count):
        name = f"m{i:05d}"
        shape = rng.random()
        if shape < 0.5:
            lines.append(
                f'  {name}: {{versions: {{"1": {{backend: a, name: x, version: "1"}}}}}}\n'
            )
        elif shape < 0.75:
            lines.append(
                f"  {name}:\n    versions:\n      1: {{backend: b}}\n"
                f"      2:\n        backend: a\n        version: 2\n    default: 1\n\n"
            )
        elif shape < 0.9:
            lines.append(
                f'  {name}:  # note\n    versions: {{"1": {{backend: a,\n'
                f'      name: "a long\n      name"}}}}\n# a comment at column 0\n'
            )
        else:
            lines.append(
                f'  {name}:\n    versions:\n      "1": {{backend: a}}\n      "2": {{backend: b}}\n'
                f'    traffic: {{"1": 90, "2": 10}}\n    deterministic: true\n'
                f"    cache: {{ttl: 30s}}\n"
            )
    lines.append("routes:\n  - path: /web/\n    backend: web\n")
    return "".join(lines)


BIG = big_file(1500)


def test_a_big_file_reads_as_it_did() -> None:
    new, old = new_reading(BIG), old_reading(BIG)
    assert new[0] == "table"
    assert new == old


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  m00750: {versions:", "  m00750: {colour: blue, versions:"),  # an unknown key
        ("backend: a, name: x", "backend: gone, name: x"),  # every such model: no backend
        ("  m01499:", "  m00003:"),  # a duplicate model
        ("  m00750:", "  m00750: [\n"),  # not YAML
        ("  web: {kind: http", "  web: {kind: nope"),  # one backend wrong
    ],
)
def test_a_big_file_with_a_mistake_is_refused_as_it_was(old: str, new: str) -> None:
    assert old in BIG
    text = BIG.replace(old, new, 1) if "gone" not in new else BIG.replace(old, new)
    reading = new_reading(text, parse_config(BIG))
    assert reading[0] == "invalid"
    assert reading == old_reading(text)


def test_an_unchanged_model_is_carried_over_as_the_same_object() -> None:
    first = parse_config(BIG)
    renamed = BIG.replace("  m00010:", "  r00010:", 1)  # a new entry
    one_line = '  m00011: {versions: {"1": {backend: a, name: x, version: "1"}}}'
    assert one_line in renamed
    text = renamed.replace(one_line, '  m00011: {versions: {"1": {backend: a, name: y}}}', 1)
    assert text.count("\n") == BIG.count("\n")
    second = parse_config(text, previous=first)
    assert second.table == old_reading(text)[1]
    before, after = first.table.models, second.table.models
    kept = [name for name in after if after[name] is before.get(name)]
    assert len(kept) == len(after) - 2
    assert "r00010" in after
    assert "m00010" not in after
    assert after["m00011"] is not before["m00011"]
    assert after["m00011"].versions["1"].name == "y"
    third = parse_config(text, previous=second)
    assert all(third.table.models[name] is after[name] for name in after)


def test_an_invalid_reload_is_refused_whatever_it_carries_over() -> None:
    first = parse_config(BIG)
    text = BIG.replace("  a: {kind: kserve", "  z: {kind: kserve", 1)  # models name a: gone
    reading = new_reading(text, first)
    assert reading[0] == "invalid"
    assert reading == old_reading(text)
    assert "no backend named 'a'" in str(reading[1])


# Edits a person or a tool makes: rename a model, retype a value, add or drop a character,
# copy a line elsewhere. Most leave a valid file, many an invalid one.
EDITS = st.lists(
    st.tuples(st.integers(0, 10**6), st.sampled_from(["rename", "insert", "delete", "copy"])),
    min_size=1,
    max_size=3,
)
SMALL = big_file(40, seed=7)
SNIPPETS = [": ", "\n", "  ", "{", "}", "[", "'", '"', "#", "- ", "&x ", "*x", "backend: b"]


def edited(text: str, edits: list[tuple[int, str]]) -> str:
    for at, kind in edits:
        position = at % (len(text) + 1)
        if kind == "rename":
            text = text.replace(f"  m{at % 40:05d}:", f"  n{at % 40:05d}:", 1)
        elif kind == "insert":
            text = text[:position] + SNIPPETS[at % len(SNIPPETS)] + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + 1 + at % 4 :]
        else:
            lines = text.splitlines(keepends=True)
            lines.insert(at % len(lines), lines[(at // 7) % len(lines)])
            text = "".join(lines)
    return text


@examples(150)
@given(EDITS)
def test_an_edited_file_reloads_as_the_old_reader_reads_it(edits: list[tuple[int, str]]) -> None:
    text = edited(SMALL, edits)
    assert new_reading(text, parse_config(SMALL)) == old_reading(text)


def test_anchors_make_the_file_read_whole() -> None:
    """An alias's entry depends on its anchor's entry, wherever it is; an anchor twice is an
    error, even a thousand entries apart."""
    anchored = BIG.replace("  m00001:", "  m00001: &one", 1)
    aliased = anchored.replace("  m01400:", "  m01400: *one\n  x01400:", 1)
    first = parse_config(aliased)
    assert first.table.models["m01400"] == first.table.models["m00001"]
    changed = aliased.replace(
        "  m00001: &one", "  m00001: &one {versions: {v: {backend: b}}}\n  y00001:", 1
    )
    reading = new_reading(changed, first)
    assert reading == old_reading(changed)
    assert isinstance(reading[1], RouteTable)
    assert list(reading[1].models["m01400"].versions) == ["v"]
    twice = anchored.replace("  m01400:", "  m01400: &one", 1)
    assert new_reading(twice, first) == old_reading(twice)
    assert "second occurrence" in str(old_reading(twice)[1])  # of the anchor


def test_the_plain_layout_is_split_into_sections_and_entries() -> None:
    layout = sections.split(BACKEND + MODEL_TWO_VERSIONS + "  n: {versions: {}}\nroutes: []\n")
    assert layout is not None
    assert list(layout.sections) == ["backends", "models", "routes"]
    assert layout.entries is not None
    assert [name for name, _ in layout.entries] == ["m", "n"]
    assert layout.entries[1][1] == "  n: {versions: {}}\n"


@pytest.mark.parametrize(
    "text",
    [
        "backends: {}\n---\nmodels: {}\n",  # a second document
        "{backends: {}}\n",  # a flow mapping at the top
        '"backends": {}\n',  # a quoted key
        "  backends: {}\n",  # indented content first
        "backends: {}\nbackends: {}\n",  # a duplicate
        "backends: {}\r",  # a lone carriage return
    ],
)
def test_other_layouts_are_read_whole(text: str) -> None:
    assert sections.split(text) is None


@pytest.mark.parametrize(
    "models",
    [
        "models: {m: {}}\n",  # one line
        "models:\n  m: {}\n n: {}\n",  # a line indented less than the entries
        "models:\n  'm': {}\n",  # a quoted name
        "models:\n  ? m\n  : {}\n",  # a complex key
    ],
)
def test_models_not_in_plain_entries_are_read_as_one_section(models: str) -> None:
    layout = sections.split("backends: {}\n" + models)
    assert layout is not None
    assert layout.entries is None


@pytest.mark.parametrize("start", ["", "---\n", "# routes\n--- # the one document\n"])
def test_the_fast_path_is_taken_for_a_plain_file(start: str) -> None:
    loaded = parse_config(start + BIG)
    assert loaded.table == old_reading(BIG)[1]
    assert len(loaded.entries) == 1500  # kept for the next load: the fast path read it
