"""routes.yaml validation: every problem is reported, each with its YAML path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.file import load_config, parse_config
from gateway.errors import ConfigError, ConfigIssue
from tests.support import REPO

REPO_ROUTES = REPO / "routes.yaml"

# Four lines every snippet below starts from; what a case adds begins on line 5.
BACKEND = """\
backends:
  a:
    kind: triton
    urls: [http://127.0.0.1:8000]
"""

MODEL_TWO_VERSIONS = """\
models:
  m:
    versions:
      "1": {backend: a}
      "2": {backend: a}
"""


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.yaml")
    assert caught.value.source == "routes.yaml"
    return caught.value.issues


def only_issue(text: str) -> ConfigIssue:
    issues = issues_of(text)
    assert len(issues) == 1, issues
    return issues[0]


# (YAML, path of the problem, its line, a fragment of the message)
CASES = [
    pytest.param(BACKEND + "colour: blue\n", "colour", 5, "unknown key 'colour'", id="top-key"),
    pytest.param(
        BACKEND + "    tiemout: 2s\n", "backends.a.tiemout", 5, "unknown key", id="backend-key"
    ),
    pytest.param(
        BACKEND + "    health:\n      interval: 1s\n      jitter: 1s  # line 7\n",
        "backends.a.health.jitter",
        7,
        "unknown key 'jitter'",
        id="health-key",
    ),
    pytest.param(
        BACKEND + "models:\n  m:\n    versions:\n      '1':\n        backend: a\n"
        "        bakend: b  # line 10\n",
        "models.m.versions.1.bakend",
        10,
        "unknown key 'bakend'",
        id="version-key",
    ),
    pytest.param(
        BACKEND + "models:\n  m:\n    versions:\n      '1':\n        backend: a\n"
        "        inputs:\n"
        "          - name: x\n"
        "            datatype: FP32\n"
        "            shape: [-1, 4]\n"
        "            dtype: float  # line 14\n",
        "models.m.versions.1.inputs.0.dtype",
        14,
        "unknown key 'dtype'",
        id="tensor-spec-key",
    ),
    pytest.param(
        BACKEND + "routes:\n  - path: /x/\n    backend: a\n    rewrite: true  # line 8\n",
        "routes.0.rewrite",
        8,
        "unknown key 'rewrite'",
        id="route-key",
    ),
    pytest.param(
        BACKEND + "    timeout: 2 seconds\n",
        "backends.a.timeout",
        5,
        "bad duration '2 seconds'",
        id="duration-words",
    ),
    pytest.param(
        BACKEND + "    timeout: -1s\n",
        "backends.a.timeout",
        5,
        "bad duration '-1s'",
        id="duration-neg",
    ),
    pytest.param(
        BACKEND + "    timeout: true\n",
        "backends.a.timeout",
        5,
        "a duration must be",
        id="duration-bool",
    ),
    pytest.param(
        BACKEND + "    timeout: -1\n",
        "backends.a.timeout",
        5,
        "greater than 0",
        id="duration-neg-n",
    ),
    pytest.param(
        BACKEND + "    timeout: 0ms\n",
        "backends.a.timeout",
        5,
        "greater than 0",
        id="duration-zero",
    ),
    pytest.param(
        BACKEND + "    outlier:\n      ejection: 10 sec  # line 6\n",
        "backends.a.outlier.ejection",
        6,
        "bad duration '10 sec'",
        id="duration-nested",
    ),
    pytest.param(
        BACKEND + "    retries: {budget: 150%}\n",
        "backends.a.retries.budget",
        5,
        "less than or equal to 1",
        id="ratio-over-100",
    ),
    pytest.param(
        BACKEND + "    retries: {budget: lots%}\n",
        "backends.a.retries.budget",
        5,
        "bad percentage 'lots%'",
        id="ratio-words",
    ),
    pytest.param(
        BACKEND + "models:\n  m:\n    versions:\n      '1':\n        backend: b  # line 9\n",
        "models.m.versions.1.backend",
        9,
        "no backend named 'b'",
        id="version-missing-backend",
    ),
    pytest.param(
        BACKEND + "  web:\n    kind: http\n    urls: [http://127.0.0.1:9000]\n"
        "models:\n  m:\n    versions:\n      '1': {backend: web}  # line 11\n",
        "models.m.versions.1.backend",
        11,
        "'web' is kind http",
        id="version-on-http-backend",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    traffic: {'1': 90, '2': 20}  # line 10\n",
        "models.m.traffic",
        10,
        "add up to 110, not 100",
        id="traffic-sum",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    traffic: {'1': 50, '3': 50}  # line 10\n",
        "models.m.traffic",
        10,
        "traffic names unknown versions: 3",
        id="traffic-unknown-version",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    traffic: {'1': 110, '2': -10}  # line 10\n",
        "models.m.traffic",
        10,
        "must not be negative",
        id="traffic-negative",
    ),
    pytest.param(
        BACKEND
        + "models:\n  m:\n    default: '3'  # line 7\n    versions:\n      '1': {backend: a}\n",
        "models.m.default",
        7,
        "default version '3' is not in versions",
        id="default-missing",
    ),
    pytest.param(
        BACKEND
        + "models:\n  m:\n    versions:\n      '1': {backend: a}\n    default: 2  # line 9\n",
        "models.m.default",
        9,
        "default version '2' is not in versions",
        id="default-missing-int",
    ),
    pytest.param(
        "backends:\n  ts:\n    kind: torchserve\n    urls: [http://127.0.0.1:8080]\n",
        "backends.ts.management_urls",  # the missing key, at its backend's line
        2,
        "kind torchserve needs management_urls",
        id="torchserve-no-management",
    ),
    pytest.param(
        "backends:\n  ts:\n    kind: torchserve\n"
        "    urls: [http://127.0.0.1:8080, http://127.0.0.1:8090]\n"
        "    management_urls: [http://127.0.0.1:8081]  # line 5\n",
        "backends.ts.management_urls",
        5,
        "management_urls needs one entry per url",
        id="management-count",
    ),
    pytest.param(
        BACKEND + "    management_urls: [http://127.0.0.1:8001]\n",
        "backends.a.management_urls",
        5,
        "unknown key 'management_urls'",  # kind triton's spec has no such key
        id="management-not-torchserve",
    ),
    pytest.param(
        "backends:\n  a:\n    kind: onnx\n    urls: [http://127.0.0.1:8000]\n",
        "backends.a.kind",
        3,
        "'torchserve'",
        id="unknown-kind",
    ),
    pytest.param(
        "backends:\n  a:\n    kind: triton\n    urls: []\n",
        "backends.a.urls",
        4,
        "at least 1 item",
        id="no-urls",
    ),
    pytest.param(
        BACKEND
        + "routes:\n  - path: /x/\n    backend: a\n  - path: /x/  # line 8\n    backend: a\n",
        "routes.1.path",
        8,
        "'/x/' is listed twice",
        id="duplicate-route",
    ),
    pytest.param(
        BACKEND + "routes:\n  - path: /v1/models/\n    backend: a\n",
        "routes.0.path",
        6,
        "shadows the inference API",
        id="route-shadows-v1",
    ),
    pytest.param(
        BACKEND + "routes:\n  - path: /v2/\n    backend: a\n",
        "routes.0.path",
        6,
        "shadows the inference API",
        id="route-shadows-v2",
    ),
    pytest.param(
        BACKEND + "routes:\n  - path: /admin/x/\n    backend: a\n",
        "routes.0.path",
        6,
        "shadows the inference API",
        id="route-shadows-admin",
    ),
    pytest.param(
        BACKEND + "routes:\n  - path: /x\n    backend: a\n",
        "routes.0.path",
        6,
        "should match pattern",
        id="route-no-trailing-slash",
    ),
    pytest.param(
        BACKEND + "routes:\n  - path: /x/\n    backend: nope  # line 7\n",
        "routes.0.backend",
        7,
        "no backend named 'nope'",
        id="route-missing-backend",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    sticky: {by: header}  # line 10\n",
        "models.m.sticky",
        10,
        "sticky by header needs a name",
        id="sticky-header-unnamed",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    shadow: {version: 3}  # line 10\n",
        "models.m.shadow.version",
        10,
        "shadow version '3' is not in versions",
        id="shadow-unknown-version",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    rollout: {canary: 2, steps: [5, 50, 40]}\n",
        "models.m.rollout.steps",
        10,
        "steps must increase",
        id="rollout-steps-decrease",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    rollout: {canary: 2, steps: [5, 50]}\n",
        "models.m.rollout.steps",
        10,
        "the last step must be 100",
        id="rollout-steps-short",
    ),
    pytest.param(
        BACKEND + MODEL_TWO_VERSIONS + "    default: 2\n    rollout: {canary: 2}\n",
        "models.m.rollout.canary",
        11,
        "the canary must differ from the stable version",
        id="rollout-canary-is-stable",
    ),
    pytest.param("backends: {}\n", "backends", 1, "at least 1 item", id="no-backends"),
    pytest.param("models: {}\n", "backends", 1, "Field required", id="backends-missing"),
]


@pytest.mark.parametrize(("text", "path", "line", "fragment"), CASES)
def test_each_problem_names_its_path_and_line(
    text: str, path: str, line: int, fragment: str
) -> None:
    issue = only_issue(text)
    assert (issue.path, issue.line) == (path, line)
    assert fragment in issue.message


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8010", "ftp://127.0.0.1/x", "http://", "http://host name:80", "https//host"],
)
def test_bad_url_points_at_the_list_item(url: str) -> None:
    text = (
        "backends:\n"
        "  a:\n"
        "    kind: triton\n"
        "    urls:\n"
        "      - http://127.0.0.1:8000\n"
        f"      - '{url}'\n"
    )
    issue = only_issue(text)
    assert (issue.path, issue.line) == ("backends.a.urls.1", 6)
    assert issue.message == f"not an http(s) URL: {url!r}"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        pytest.param(
            "backends:\n  a:\n    kind: triton: x\n", 3, "mapping values", id="colon-in-value"
        ),
        pytest.param(
            "backends:\n  a:\n\tkind: triton\n", 3, "'\\t' that cannot start", id="tab-indent"
        ),
        pytest.param("backends:\n  - a\n  b: 1\n", 3, "expected <block end>", id="list-then-map"),
        pytest.param(
            "backends:\n  a: {kind: triton\n\nmodels: {}\n", 4, "expected ',' or '}'", id="unclosed"
        ),
    ],
)
def test_yaml_syntax_error_has_its_line(text: str, line: int, fragment: str) -> None:
    issue = only_issue(text)
    assert (issue.path, issue.line) == ("", line)
    assert issue.message.startswith("invalid YAML: ")
    assert fragment in issue.message


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just text\n", "42\n", "", "# only a comment\n"])
def test_the_file_must_be_a_mapping(text: str) -> None:
    issue = only_issue(text)
    assert (issue.path, issue.line) == ("", 1)
    assert issue.message == "the file must be a mapping"


def test_every_problem_in_a_file_is_reported() -> None:
    text = """\
backends:
  a:
    kind: triton
    urls: [http://127.0.0.1:8000]
    timeout: soon                 # 5: bad duration
  ts:                             # 6: no management_urls
    kind: torchserve
    urls: [http://127.0.0.1:8080]
models:
  m:
    default: "9"                  # 11: not a version
    versions:
      "1": {backend: a}
      "2": {backend: gone}        # 14: no such backend
    traffic: {"1": 50, "2": 40}   # 15: adds up to 90
routes:
  - path: /v1/x/                  # 17: shadows /v1/
    backend: a
    rewrite: true                 # 19: unknown key
"""
    found = {(issue.line, issue.path) for issue in issues_of(text)}
    assert found == {
        (5, "backends.a.timeout"),
        (6, "backends.ts.management_urls"),
        (11, "models.m.default"),
        (14, "models.m.versions.2.backend"),
        (15, "models.m.traffic"),
        (17, "routes.0.path"),
        (19, "routes.0.rewrite"),
    }


def test_issue_text_and_error_carry_line_and_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BACKEND + "colour: blue\n", "conf/routes.yaml")
    assert str(caught.value.issues[0]) == "line 5: colour: unknown key 'colour'"
    assert str(caught.value) == "conf/routes.yaml: line 5: colour: unknown key 'colour'"


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    [issue] = caught.value.issues
    assert issue.line is None
    assert issue.message.startswith("cannot read")
    assert caught.value.source == str(missing)


def test_durations_and_ratios_reach_the_table() -> None:
    text = BACKEND + (
        "    timeout: 250ms\n"
        "    connect_timeout: 2\n"
        "    retries: {budget: 20%}\n"
        "    outlier: {ejection: 5m, max_ejected: 0.25}\n"
        "    health: {interval: 1h}\n"
    )
    backend = parse_config(text).table.backends["a"]
    assert backend.timeout == pytest.approx(0.25)
    assert backend.connect_timeout == 2.0
    assert backend.retries.budget == pytest.approx(0.2)
    assert backend.outlier.ejection == 300.0
    assert backend.outlier.max_ejected == 0.25
    assert backend.health.interval == 3600.0
    assert backend.overall_deadline == pytest.approx(0.5)  # no deadline: twice the timeout


def test_numeric_version_names_and_defaults_become_text() -> None:
    text = (
        BACKEND
        + "models:\n  m:\n    default: 1\n    versions:\n      1: {backend: a, version: 7}\n"
    )
    model = parse_config(text).table.models["m"]
    assert list(model.versions) == ["1"]
    assert model.default_version == "1"
    assert model.versions["1"].version == "7"


def test_the_repository_routes_yaml_is_valid() -> None:
    table = load_config(REPO_ROUTES).table
    assert table.backends
    for model in table.models.values():
        assert model.default_version in model.versions
        for version in model.versions.values():
            assert version.backend in table.backends


def test_duplicate_keys_are_errors_with_their_line() -> None:
    text = "backends:\n  a: {kind: kserve, urls: ['http://h:1']}\n  a: {kind: kserve, urls: ['http://h:2']}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert [str(i) for i in caught.value.issues] == ["line 3: backends.a: duplicate key 'a'"]


def test_anchors_aliases_and_merge_keys_are_resolved() -> None:
    # routes.yaml files share a version's settings this way (the tests' builder no longer does)
    text = BACKEND + (
        "models:\n"
        "  m:\n"
        "    versions:\n"
        '      "1": &v {backend: a, name: x, version: "1.0",\n'
        "               inputs: [{name: i, datatype: FP32, shape: [-1]}]}\n"
        '      "2": {<<: *v, version: "2.0"}\n'
        "  n:\n"
        '    versions: {"1": *v}\n'
    )
    models = parse_config(text).table.models
    one, two = models["m"].versions["1"], models["m"].versions["2"]
    assert (one.name, one.version, two.name, two.version) == ("x", "1.0", "x", "2.0")
    assert two.inputs == one.inputs
    assert models["n"].versions["1"] == one
