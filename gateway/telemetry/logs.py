"""JSON log lines: one object per record, ``extra=`` fields included. Never log a secret."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from gateway.telemetry.log_queue import DEFAULT_QUEUE_SIZE, QueuedStreamHandler

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


class JSONFormatter(logging.Formatter):
    def converter(self, seconds: float | None) -> time.struct_time:
        return time.gmtime(seconds)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _RESERVED)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # set by the queued handler, which hands no traceback across
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...``: the JSON line's fields, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _RESERVED and v is not None
        )
        return f"{line} {fields}" if fields else line


def log_config(
    level: str, format: str = "json", queue_size: int = DEFAULT_QUEUE_SIZE
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the gateway and uvicorn (passed to uvicorn);
    ``format`` is ``json`` (one object per line) or ``text``. Lines go to stderr through a
    queue of ``queue_size`` records and one writer thread (:mod:`gateway.telemetry.log_queue`):
    a sink that stops reading costs dropped lines, never a waiting request."""
    handler = {
        "()": QueuedStreamHandler,
        "formatter": format,
        "stream": "ext://sys.stderr",
        "queue_size": queue_size,
    }
    logger = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JSONFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            "gateway": logger,
            "uvicorn": logger,
            "uvicorn.error": {"level": level.upper()},
        },
    }
