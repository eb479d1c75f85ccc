"""Log lines are JSON objects that carry their ``extra`` fields."""

from __future__ import annotations

import json
import logging

from gateway.telemetry.logs import JSONFormatter


def test_a_record_becomes_one_json_object_with_its_extras() -> None:
    record = logging.LogRecord(
        "gateway.pool", logging.WARNING, __file__, 1, "ejected %s", ("r",), None
    )
    record.backend = "triton"
    line = json.loads(JSONFormatter().format(record))
    assert line["message"] == "ejected r"
    assert line["level"] == "warning"
    assert line["logger"] == "gateway.pool"
    assert line["backend"] == "triton"
    assert line["time"].endswith("Z")
