"""routes.yaml's ``batching:`` section: defaults, and errors that name the field and line."""

from __future__ import annotations

import pytest

from gateway.config.file import parse_config
from gateway.errors import ConfigError


def routes(batching: str, shape: str = "[-1, 4]") -> str:
    return f"""backends:
  t: {{kind: triton, urls: ["http://t.invalid"]}}
models:
  m:
    versions:
      "1":
        backend: t
        inputs: [{{name: x, datatype: FP32, shape: {shape}}}]
        batching: {batching}
"""


def test_defaults() -> None:
    version = parse_config(routes("{max_batch_size: 16}")).table.models["m"].versions["1"]
    assert version.batching is not None
    assert version.batching.max_batch_size == 16
    assert version.batching.max_delay == 0.005
    assert version.batching.max_queue == 1024
    assert version.batching.max_in_flight_per_replica == 2


def test_durations_are_read() -> None:
    loaded = parse_config(routes("{max_batch_size: 4, max_delay: 2ms}"))
    batching = loaded.table.models["m"].versions["1"].batching
    assert batching is not None
    assert batching.max_delay == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("batching", "shape", "expected"),
    [
        ("{max_delay: 2ms}", "[-1, 4]", "line 9: models.m.versions.1.batching.max_batch_size"),
        ("{max_batch_size: 1}", "[-1, 4]", "greater than or equal to 2"),
        ("{max_batch_size: 8, max_delay: 1m}", "[-1, 4]", "max_delay: Input should be less"),
        ("{max_batch_size: 8, max_queue: 0}", "[-1, 4]", "max_queue"),
        ("{max_batch_size: 8, max_in_flight_per_replica: 0}", "[-1, 4]", "per_replica"),
        ("{max_batch_size: 8, size: 3}", "[-1, 4]", "unknown key 'size'"),
        ("{max_batch_size: 8}", "[1, 4]", "input 'x' (inputs[0]) declares it as 1: declare -1"),
    ],
)
def test_mistakes_are_named(batching: str, shape: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(routes(batching, shape))
    assert expected in str(caught.value)
