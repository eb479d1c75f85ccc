"""Log lines off the event loop: a bounded queue to one writer thread; a full queue drops.

A log sink that stops reading (a stuck log shipper, a paused ``docker logs``, ``| less``)
blocks ``write()`` once the pipe's buffer is full. Written on the event loop, that stalled every
request, ``/healthz`` included (issue 12). Here the caller only snapshots the record and puts it
on a bounded queue; one daemon thread formats and writes. When the queue is full the record is
dropped and counted (``gateway_log_dropped_total``), and the writer reports how many it lost
("dropped N log lines") once the sink takes lines again. Envoy's access logs behave the same.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from typing import Any, Protocol, TextIO

DEFAULT_QUEUE_SIZE = 10_000
_FLUSH_TIMEOUT = 1.0
_CLOSE_TIMEOUT = 4.0  # with the 1 s flush, a blocked sink holds exit for at most 5 s
_STOP = logging.LogRecord("gateway.logs", logging.NOTSET, "", 0, "stop", None, None)


class DropCounter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class QueuedStreamHandler(logging.handlers.QueueHandler):
    """A handler whose ``emit`` never waits on the sink.

    Contract: ``emit`` snapshots the record (message rendered, exception formatted, so nothing
    the caller later mutates or frees is read by another thread) and puts it on a queue of
    ``queue_size``; if that is full, the record is dropped and counted in :attr:`dropped` and
    in the counter given to :meth:`count_into`. One thread formats (with this handler's
    formatter) and writes the records in order. :meth:`close` writes what is queued, waiting
    at most ``close_timeout`` seconds for a sink that does not drain.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        close_timeout: float = _CLOSE_TIMEOUT,
    ) -> None:
        self._queue: queue.Queue[logging.LogRecord] = queue.Queue(maxsize=max(1, queue_size))
        super().__init__(self._queue)
        self.dropped = 0
        self._reported = 0  # drops already summarised (the writer thread's)
        self._drops = threading.Lock()
        self._counter: DropCounter | None = None
        self._close_timeout = close_timeout
        self._exceptions = logging.Formatter()
        self._sink = _Sink(stream)
        self._writer = threading.Thread(target=self._write, name="gateway-log-writer", daemon=True)
        self._writer.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Unlike QueueHandler.prepare, the message is not formatted here (the writer does
        # that, with this handler's formatter); only what must be read now is rendered.
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._exceptions.formatException(record.exc_info)
            record.exc_info = None  # a traceback holds frames: never hand it to another thread
        return record

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._queue.put_nowait(self.prepare(record))
        except queue.Full:
            self._drop()
        except Exception:  # noqa: BLE001 - a record that cannot be rendered is a lost line
            # handleError would write a traceback to stderr on this thread: the very wait
            # this handler exists to avoid.
            self._drop()

    def count_into(self, counter: DropCounter | None) -> None:
        """Count drops in ``counter`` (a Prometheus counter) from now on, and the earlier ones."""
        with self._drops:
            self._counter = counter
            if counter is not None and self.dropped:
                counter.inc(self.dropped)

    def _drop(self) -> None:
        with self._drops:
            self.dropped += 1
            counter = self._counter
        if counter is not None:
            counter.inc()

    def _write(self) -> None:
        while True:
            record = self._queue.get()
            if record is _STOP:
                return
            self._summarise_drops()
            try:
                self._sink.write(self.format(record))
            except Exception:  # noqa: BLE001 - a sink that fails loses the line; counted
                self._drop()
            finally:
                self._queue.task_done()

    def _summarise_drops(self) -> None:
        lost = self.dropped - self._reported
        if lost <= 0:
            return
        self._reported += lost
        summary = logging.LogRecord(
            "gateway.logs",
            logging.WARNING,
            __file__,
            0,
            "dropped %d log lines: the log sink was not keeping up",
            (lost,),
            None,
        )
        summary.dropped = lost
        with contextlib.suppress(Exception):
            self._sink.write(self.format(self.prepare(summary)))

    def flush(self) -> None:
        """Wait until every queued line is written, for at most 1 s (never on the data path:
        ``logging.shutdown`` and tests call it)."""
        deadline = time.monotonic() + _FLUSH_TIMEOUT
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks and self._writer.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._queue.all_tasks_done.wait(remaining):
                    return

    @property
    def blocked(self) -> bool:
        """After :meth:`close`: the writer is still in a write its sink never took."""
        return self._writer.is_alive()

    def close(self) -> None:
        if self._writer.is_alive():
            deadline = time.monotonic() + self._close_timeout
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=self._close_timeout)
                self._writer.join(max(0.0, deadline - time.monotonic()))
        if not self._writer.is_alive():
            self._sink.close()  # a writer still blocked in write() keeps its descriptor
        super().close()


class _Sink:
    """Where lines go. A real file descriptor (stderr) is written with ``os.write`` on a
    duplicate of it: no buffer and no lock shared with ``sys.stderr``, so a writer blocked in a
    write cannot deadlock the interpreter flushing ``sys.stderr`` at exit."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream: Any = sys.stderr if stream is None else stream
        stream = self._stream
        self._encoding = getattr(stream, "encoding", None) or "utf-8"
        self._fd: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError):
            if stream is not None:
                stream.flush()
                self._fd = os.dup(stream.fileno())

    def write(self, line: str) -> None:
        if self._fd is None:
            if self._stream is not None:
                self._stream.write(line + "\n")
                self._stream.flush()
            return
        data = memoryview((line + "\n").encode(self._encoding, "backslashreplace"))
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def count_drops(
    counter: DropCounter | None, loggers: tuple[str, ...] = ("gateway", "uvicorn")
) -> None:
    """Count the lines dropped by the queued handlers of ``loggers`` in ``counter``."""
    seen: set[int] = set()
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, QueuedStreamHandler) and id(handler) not in seen:
                seen.add(id(handler))
                handler.count_into(counter)


def settle(loggers: tuple[str, ...] = ("gateway", "uvicorn", "")) -> bool:
    """Close the queued handlers of ``loggers`` now (each bounded by its close timeout), and
    say whether a writer is still blocked writing to a sink that never drains.

    Such a thread, stuck in a system call, can hold the interpreter's own shutdown for good
    (seen on CPython 3.11: ``gateway serve`` with its output on a pipe nobody reads did not
    exit after SIGTERM); the caller then ends the process with ``os._exit``."""
    blocked = False
    seen: set[int] = set()
    for name in loggers:
        for handler in logging.getLogger(name or None).handlers:
            if isinstance(handler, QueuedStreamHandler) and id(handler) not in seen:
                seen.add(id(handler))
                handler.close()
                blocked = blocked or handler.blocked
    return blocked
