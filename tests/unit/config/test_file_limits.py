"""load_config turns every way a file can be wrong into a ConfigError (issue 12): the file
watcher counts those and lives on; anything else used to end it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.config.file import load_config, parse_config
from gateway.errors import ConfigError


def issue_of(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    [issue] = exc.value.issues
    return str(issue)


def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "routes.yaml"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    with pytest.raises(ConfigError) as exc:
        load_config(fifo)
    assert issue_of(exc) == "<root>: is not a regular file"


def test_the_size_cap_is_a_setting(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("backends: {}\n" + "#" * 100 + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path, max_bytes=64)
    assert issue_of(exc) == (
        "<root>: the file is 114 bytes, over the limit of 64 (GATEWAY_MAX_CONFIG_BYTES)"
    )


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert issue_of(exc) == "<root>: cannot read: No such file or directory"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "line 1: <root>: a YAML alias contains itself"),
        ("[" * 100_000, "<root>: invalid YAML: nested too deeply"),
        ("   \n\n", None),  # only whitespace: parsed as nothing
    ],
)
def test_documents_that_would_hang_or_crash_the_reader(text: str, message: str | None) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    if message is not None:
        assert issue_of(exc) == message


def test_aliases_within_the_limit_are_fine() -> None:
    text = "x: &x {kind: triton}\ny: [*x, *x, *x]\n"
    with pytest.raises(ConfigError) as exc:  # not a route table, but not refused for aliases
        parse_config(text)
    assert "alias" not in str(exc.value)
