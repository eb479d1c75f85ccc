"""``gateway check`` and ``gateway schema``: what an operator sees before a deploy."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from gateway.cli.main import main

BASE = """\
backends:
  a:
    kind: triton
    urls: [http://127.0.0.1:8000]
    timeout: 2s
  b:
    kind: tfserving
    urls: [http://127.0.0.1:8501]
models:
  m:
    versions:
      "1": {backend: a}
      "2": {backend: b}
    traffic: {"1": 90, "2": 10}
routes:
  - path: /x/
    backend: a
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_a_valid_file_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "routes.yaml", BASE)
    code, out, err = run(["check", path], capsys)
    assert code == 0
    assert out == [f"{path}: ok (2 backends, 1 models, 1 routes)"]
    assert err == []


def test_every_error_is_printed_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "backends:\n"
        "  a:\n"
        "    kind: triton\n"
        "    urls: [http://127.0.0.1:8000]\n"
        "    timeout: 2 seconds\n"
        "models:\n"
        "  m:\n"
        "    versions:\n"
        "      '1': {backend: gone}\n"
        "colour: blue\n"
    )
    path = write(tmp_path, "routes.yaml", text)
    code, out, err = run(["check", path], capsys)
    assert code == 1
    assert out == []
    assert err[0] == f"{path}: invalid (3 problem(s))"
    assert sorted(err[1:]) == sorted(
        [
            "  line 5: backends.a.timeout: bad duration '2 seconds': use e.g. '250ms', '2s', "
            "'5m', '1h'",
            "  line 9: models.m.versions.1.backend: no backend named 'gone'",
            "  line 10: colour: unknown key 'colour'",
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("backends: [a\n", "  line 2: <root>: invalid YAML: ", id="syntax"),
        pytest.param("- a\n- b\n", "  line 1: <root>: the file must be a mapping", id="list"),
    ],
)
def test_unparsable_files_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write(tmp_path, "routes.yaml", text)
    code, _, err = run(["check", path], capsys)
    assert code == 1
    assert err[0] == f"{path}: invalid (1 problem(s))"
    assert err[1].startswith(expected)


def test_a_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.yaml")
    code, _, err = run(["check", path], capsys)
    assert code == 1
    assert err == [
        f"{path}: invalid (1 problem(s))",
        "  <root>: cannot read: No such file or directory",
    ]


def test_a_valid_file_needs_no_changes_against_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", BASE)
    code, out, _ = run(["check", new, "--against", old], capsys)
    assert code == 0
    assert out[1:] == [f"no changes against {old}"]


BACKEND_C = "  c:\n    kind: kserve\n    urls: [http://127.0.0.1:8090]\n"


@pytest.mark.parametrize(
    ("old_text", "new_text", "changes"),
    [
        pytest.param(
            BASE,
            BASE.replace("models:\n", BACKEND_C + "models:\n"),
            ["+ backend c"],
            id="backend-added",
        ),
        pytest.param(
            BASE.replace("models:\n", BACKEND_C + "models:\n"),
            BASE,
            ["- backend c"],
            id="backend-removed",
        ),
        pytest.param(
            BASE,
            BASE.replace("timeout: 2s", "timeout: 500ms"),
            ["~ backend a: timeout 2.0 → 0.5"],
            id="backend-timeout",
        ),
        pytest.param(
            BASE,
            BASE.replace("timeout: 2s", "timeout: 2s\n    health: {interval: 1s}"),
            ["~ backend a: health.interval 5.0 → 1.0"],
            id="backend-nested-field",
        ),
        pytest.param(
            BASE,
            BASE.replace(
                "[http://127.0.0.1:8501]", "[http://127.0.0.1:8501, http://127.0.0.1:8502/]"
            ),
            [
                "~ backend b: urls ['http://127.0.0.1:8501'] → "
                "['http://127.0.0.1:8501', 'http://127.0.0.1:8502']"
            ],
            id="backend-replica-added",
        ),
        pytest.param(
            BASE,
            BASE.replace("routes:", "  n:\n    versions:\n      a: {backend: a}\nroutes:"),
            ["+ model n (versions a)"],
            id="model-added",
        ),
        pytest.param(
            BASE.replace("routes:", "  n:\n    versions:\n      a: {backend: a}\nroutes:"),
            BASE,
            ["- model n"],
            id="model-removed",
        ),
        pytest.param(
            BASE,
            BASE.replace('"2": {backend: b}', '"2": {backend: b}\n      "3": {backend: a}'),
            ["+ model m version 3", "~ model m default version: 2 → 3"],
            id="version-added-becomes-default",
        ),
        pytest.param(
            BASE.replace("    traffic", '    default: "1"\n    traffic'),
            BASE.replace("    traffic", '    default: "1"\n    traffic').replace(
                '"2": {backend: b}', '"2": {backend: b}\n      "3": {backend: a}'
            ),
            ["+ model m version 3"],
            id="version-added-pinned-default",
        ),
        pytest.param(
            BASE,
            BASE.replace('"2": {backend: b}', '"2": {backend: a, name: linear}'),
            ["~ model m version 2: backend 'b' → 'a'", "~ model m version 2: name None → 'linear'"],
            id="version-changed",
        ),
        pytest.param(
            BASE,
            BASE.replace('{"1": 90, "2": 10}', '{"1": 50, "2": 50}'),
            ["~ model m traffic: 1: 90%, 2: 10% → 1: 50%, 2: 50%"],
            id="weights",
        ),
        pytest.param(
            BASE.replace('    traffic: {"1": 90, "2": 10}\n', ""),
            BASE,
            ["~ model m traffic: none → 1: 90%, 2: 10%"],
            id="weights-added",
        ),
        pytest.param(
            BASE,
            BASE + "  - path: /y/\n    backend: b\n",
            ["+ route /y/"],
            id="route-added",
        ),
        pytest.param(
            BASE,
            BASE.replace("routes:\n  - path: /x/\n    backend: a\n", ""),
            ["- route /x/"],
            id="route-removed",
        ),
        pytest.param(
            BASE,
            BASE + "    strip_prefix: true\n",
            ["~ route /x/: strip_prefix False → True"],
            id="route-changed",
        ),
        pytest.param(
            BASE.replace("timeout: 2s", "timeout: 2000ms"),
            BASE,
            [],
            id="same-value-other-spelling",
        ),
        pytest.param(
            BASE,
            BASE.replace("models:\n", BACKEND_C + "models:\n")
            .replace('{"1": 90, "2": 10}', '{"1": 0, "2": 100}')
            .replace("backend: a\n", "backend: c\n"),
            [
                "+ backend c",
                "~ model m traffic: 1: 90%, 2: 10% → 1: 0%, 2: 100%",
                "~ route /x/: backend 'a' → 'c'",
            ],
            id="several",
        ),
    ],
)
def test_check_against_the_running_file_prints_each_change(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    old_text: str,
    new_text: str,
    changes: list[str],
) -> None:
    old = write(tmp_path, "old.yaml", old_text)
    new = write(tmp_path, "new.yaml", new_text)
    code, out, err = run(["check", new, "--against", old], capsys)
    assert (code, err) == (0, [])
    assert out[0].startswith(f"{new}: ok (")
    if changes:
        assert out[1:] == [f"changes against {old}:", *(f"  {c}" for c in changes)]
    else:
        assert out[1:] == [f"no changes against {old}"]


def test_an_invalid_new_file_is_not_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.yaml", BASE)
    new = write(tmp_path, "new.yaml", BASE.replace("2s", "soon"))
    code, out, err = run(["check", new, "--against", old], capsys)
    assert code == 1
    assert out == []
    assert err[0] == f"{new}: invalid (1 problem(s))"


def test_an_invalid_running_file_cannot_be_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.yaml", BASE.replace("kind: triton", "kind: onnx"))
    new = write(tmp_path, "new.yaml", BASE)
    code, out, err = run(["check", new, "--against", old], capsys)
    assert code == 1
    assert out == [f"{new}: ok (2 backends, 1 models, 1 routes)"]
    assert len(err) == 1
    assert err[0].startswith(f"{old}: cannot compare, it is invalid: ")
    assert "line 3: backends.a.kind" in err[0]


def test_schema_prints_a_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"backends", "models", "routes"} <= schema["properties"].keys()
    assert schema["additionalProperties"] is False


def test_check_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check"])
    assert caught.value.code == 2
    assert "config" in capsys.readouterr().err
