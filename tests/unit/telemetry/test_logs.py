"""Log lines: JSON objects that carry their ``extra`` fields, or text that keeps them."""

from __future__ import annotations

import json
import logging

from gateway.telemetry.logs import JSONFormatter, TextFormatter


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


def test_text_format_keeps_the_fields() -> None:
    record = logging.LogRecord("gateway.access", logging.INFO, "", 0, "access", None, None)
    record.status, record.model, record.tenant = 200, "linear", None
    line = TextFormatter().format(record)
    assert line.endswith("INFO gateway.access access status=200 model=linear")
