"""Valgrind's callgrind around a gateway process: the command that starts its interpreter with
instrumentation off, ``callgrind_control`` to count only a stretch of its life, and the
instruction count (``Ir``) a dump holds.

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=<dir>/callgrind.%p python …
    callgrind_control -z PID; callgrind_control -i on PID   # counters at zero, counting
    …                                                       # the requests
    callgrind_control -i off PID; callgrind_control -d PID  # <dir>/callgrind.<PID>.<n>

``callgrind_control`` reaches the process through ``vgdb`` (valgrind's gdbserver, on by
default), which wakes a process blocked in a system call (a gateway idle in ``epoll_wait``)
with ptrace.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.procs import BenchError, find_tool

T = TypeVar("T")
DUMP_PREFIX = "callgrind."
EVENT = "Ir"  # instructions executed


def tools() -> tuple[str, str]:
    """The paths of ``valgrind`` and ``callgrind_control``; a BenchError saying how to install
    them if either is missing."""
    valgrind, control = find_tool("valgrind"), find_tool("callgrind_control")
    if valgrind is None or control is None:
        raise BenchError("bench.instructions needs valgrind: sudo apt-get install -y valgrind")
    return valgrind, control


def wrap(valgrind: str, folder: Path) -> tuple[str, ...]:
    """The command prefix that runs a program under callgrind, counting nothing until told,
    its dumps in ``folder`` as ``callgrind.<pid>`` (at exit) and ``callgrind.<pid>.<n>``."""
    return (
        valgrind,
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={folder / DUMP_PREFIX}%p",
    )


def totals(text: str, event: str = EVENT) -> int:
    """The total of ``event`` in a callgrind dump: its ``totals:`` line (the sum of the costs
    in the file), else its ``summary:`` line; the columns are named by the ``events:`` line."""
    events: list[str] = []
    found: dict[str, list[int]] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep or key not in ("events", "totals", "summary"):
            continue
        if key == "events":
            events = rest.split()
        else:
            try:
                found[key] = [int(v) for v in rest.split()]
            except ValueError as exc:
                raise ValueError(f"callgrind dump: unreadable {key!r} line {line!r}") from exc
    if not events:
        raise ValueError("callgrind dump: no 'events:' line")
    if event not in events:
        raise ValueError(f"callgrind dump: no {event} among the events {events}")
    values = found.get("totals", found.get("summary"))
    if values is None:
        raise ValueError("callgrind dump: neither a 'totals:' nor a 'summary:' line")
    column = events.index(event)
    return values[column] if column < len(values) else 0  # trailing zeros may be left out


def dumps(folder: Path, pid: int) -> dict[int, Path]:
    """The numbered dumps of process ``pid`` in ``folder`` (``callgrind.<pid>.<n>``), by n."""
    pattern = re.compile(re.escape(f"{DUMP_PREFIX}{pid}.") + r"(\d+)$")
    out: dict[int, Path] = {}
    for path in folder.glob(f"{DUMP_PREFIX}{pid}.*"):
        if (match := pattern.match(path.name)) is not None:
            out[int(match.group(1))] = path
    return out


class Counter:
    """One process under callgrind: ``count(action)`` runs ``action`` with instrumentation on
    and answers the instructions the process executed meanwhile, and what ``action`` gave."""

    def __init__(self, control: str, pid: int, folder: Path, timeout: float = 120.0) -> None:
        self.control, self.pid, self.folder, self.timeout = control, pid, folder, timeout

    def _run(self, *args: str) -> None:
        cmd = [self.control, *args, str(self.pid)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{' '.join(cmd)} did not answer in {self.timeout:g} s") from exc
        if done.returncode != 0 or "Error" in done.stdout + done.stderr:
            said = " ".join((done.stderr + done.stdout).split())[:300]
            raise BenchError(f"{' '.join(cmd)} failed: {said}")

    def count(self, action: Callable[[], T]) -> tuple[int, T]:
        before = set(dumps(self.folder, self.pid))
        self._run("-z")
        self._run("-i", "on")
        try:
            result = action()
        finally:
            self._run("-i", "off")
        self._run("-d")
        return totals(self._new_dump(before)), result

    def _new_dump(self, before: set[int]) -> str:
        """The text of the dump that ``-d`` wrote (waiting for it to be complete)."""
        deadline = time.monotonic() + self.timeout
        while True:
            new = sorted(set(dumps(self.folder, self.pid)) - before)
            if new:
                text = dumps(self.folder, self.pid)[new[-1]].read_text(errors="replace")
                if "\ntotals:" in text or "\nsummary:" in text:
                    return text
            if time.monotonic() > deadline:
                raise BenchError(f"no complete callgrind dump of {self.pid} in {self.folder}")
            time.sleep(0.1)
