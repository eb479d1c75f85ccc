"""The queued log handler: a full queue drops and counts; otherwise every line, in order; a
stop writes what is queued and does not wait forever on a sink that never drains."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.telemetry.log_queue import QueuedStreamHandler, count_drops
from gateway.telemetry.logs import JSONFormatter, log_config


class StuckSink:
    """A stream whose ``write`` waits until released (a pipe nobody reads), with no file
    descriptor, so the handler writes to it as a stream."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> None:
        self.entered.set()
        self.release.wait()
        self.lines.append(text)

    def flush(self) -> None:
        pass


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("gateway.test", logging.INFO, __file__, 1, message, args, None)


@pytest.fixture
def sink() -> Iterator[StuckSink]:
    stuck = StuckSink()
    yield stuck
    stuck.release.set()  # let the writer thread finish whatever the test did


def test_a_full_queue_drops_and_counts_and_the_writer_reports_the_loss(sink: StuckSink) -> None:
    handler = QueuedStreamHandler(sink, queue_size=10)  # type: ignore[arg-type]
    handler.setFormatter(JSONFormatter())
    registry = CollectorRegistry()
    dropped = Counter("gateway_log_dropped", "test", registry=registry)
    handler.count_into(dropped)
    handler.handle(record("line %d", 0))
    assert sink.entered.wait(10)  # the writer holds line 0, blocked in write()
    for i in range(1, 16):
        handler.handle(record("line %d", i))  # returns at once: 10 queued, 5 dropped
    assert handler.dropped == 5
    assert registry.get_sample_value("gateway_log_dropped_total") == 5

    sink.release.set()
    handler.close()
    lines = [json.loads(line) for line in sink.lines]
    messages = [line["message"] for line in lines]
    assert messages[0] == "line 0"
    assert messages[1] == "dropped 5 log lines: the log sink was not keeping up"
    assert lines[1]["dropped"] == 5
    assert lines[1]["level"] == "warning"
    assert messages[2:] == [f"line {i}" for i in range(1, 11)]


def test_every_line_is_written_in_order_and_a_stop_flushes_them(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with path.open("w", encoding="utf-8") as stream:
        handler = QueuedStreamHandler(stream, queue_size=5000)
        handler.setFormatter(JSONFormatter())
        for i in range(5000):
            handler.handle(record("line %d", i))
        handler.flush()  # waits until the queue is written
        flushed = path.read_text().count("\n")
        handler.handle(record("line %d", 5000))
        handler.close()  # at once: what is still queued must be written before it returns
    assert flushed == 5000
    lines = [json.loads(line)["message"] for line in path.read_text().splitlines()]
    assert lines == [f"line {i}" for i in range(5001)]
    assert handler.dropped == 0


def test_a_stop_does_not_wait_forever_on_a_blocked_sink(sink: StuckSink) -> None:
    handler = QueuedStreamHandler(sink, queue_size=2, close_timeout=0.2)  # type: ignore[arg-type]
    for i in range(5):
        handler.handle(record("line %d", i))
    assert sink.entered.wait(10)
    handler.close()  # returns although the writer is still stuck in write()
    assert sink.lines == []


def test_the_caller_snapshots_message_and_exception(tmp_path: Path) -> None:
    path = tmp_path / "log"
    arguments = ["before"]
    with path.open("w", encoding="utf-8") as stream:
        handler = QueuedStreamHandler(stream)
        handler.setFormatter(JSONFormatter())
        try:
            raise ValueError("boom")
        except ValueError:
            failed = logging.LogRecord(
                "gateway.test", logging.ERROR, __file__, 1, "%s", (arguments,), None
            )
            failed.exc_info = sys.exc_info()
        handler.handle(failed)
        arguments[0] = "after"  # mutated once logged: the line keeps what was logged
        handler.close()
    line = json.loads(path.read_text())
    assert line["message"] == "['before']"
    assert "ValueError: boom" in line["exception"]


def test_log_config_gives_gateway_and_uvicorn_one_queued_handler() -> None:
    logging.config.dictConfig(log_config("info", "text", queue_size=123))
    handlers = [*logging.getLogger("gateway").handlers, *logging.getLogger("uvicorn").handlers]
    assert len({id(h) for h in handlers}) == 1
    [handler] = handlers[:1]
    assert isinstance(handler, QueuedStreamHandler)
    assert handler.queue.maxsize == 123  # type: ignore[attr-defined]
    registry = CollectorRegistry()
    count_drops(Counter("gateway_log_dropped", "test", registry=registry))
    assert registry.get_sample_value("gateway_log_dropped_total") == 0
