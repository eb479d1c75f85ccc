"""Processes the harness starts: pinned with ``taskset``, measured in ``/proc``, stopped by PID.

CPU time is ``utime + stime`` (fields 14 and 15 of ``/proc/<pid>/stat``, in clock ticks) summed
over a process and its live descendants (uvicorn's worker processes, Triton's Python stubs).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class BenchError(Exception):
    """A misconfigured or failing system: the run stops with this message."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """If the harness is killed (SIGKILL, a test timeout), its children get SIGKILL too."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0]), or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(int(name))) is not None and fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(parents.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes and all their descendants, in seconds."""
    ticks = 0
    for root in pids:
        for pid in tree(root):
            fields = _stat(pid)
            if fields is not None:
                ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return ticks / CLK_TCK


def rss_kib(pids: Sequence[int]) -> int:
    """VmRSS summed over these processes and their descendants, in KiB."""
    total = 0
    for root in pids:
        for pid in tree(root):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
    return total


def pin(pid: int, cpus: Sequence[int]) -> None:
    """Pin every thread of ``pid`` and of its descendants (for servers started elsewhere)."""
    for proc in tree(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{proc}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cpus)


def cpu_list(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any GATEWAY_* setting of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(extra)
    return env


@dataclass(eq=False)
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stopper: Callable[[], None] | None = None  # for processes another module owns (Triton)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_bytes()[-16384:].decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """Everything the harness started, stopped in reverse order by PID."""

    workdir: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        cmd: Sequence[str],
        cpus: Sequence[int],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                ["taskset", "-c", cpu_list(cpus), *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # a Ctrl-C reaches the harness only; it stops these
                preexec_fn=_die_with_parent,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def adopt(self, proc: Proc) -> None:
        self.started.append(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop(proc)
        self.started.clear()


def stop(proc: Proc, timeout: float = 15.0) -> None:
    """SIGTERM (SIGINT for uvicorn's graceful path is the same), wait, then SIGKILL the tree."""
    if proc.stopper is not None:
        proc.stopper()
        return
    if proc.popen.poll() is not None:
        return
    family = tree(proc.pid)
    proc.popen.send_signal(signal.SIGTERM)
    try:
        proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.popen.kill()
        proc.popen.wait(10)
    for pid in family[1:]:  # workers that outlived their master
        if (fields := _stat(pid)) is not None and fields[0] != "Z":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def wait_until(
    what: str, check: Callable[[], bool], proc: Proc | None = None, timeout: float = 60.0
) -> None:
    """Poll ``check`` until true; fail with the process's log tail if it dies or times out."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            if check():
                return
        if proc is not None and not proc.alive():
            raise BenchError(
                f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f":\n{proc.log_tail()}" if proc is not None else ""
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(0.05)


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    return check


def find_tool(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    return next((f for f in fallbacks if os.access(f, os.X_OK)), None)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop every process we started, like Ctrl-C


def stop_on_signals() -> None:
    """Ctrl-C (even if the harness was started with SIGINT ignored) and SIGTERM both raise
    KeyboardInterrupt in the main thread, so a harness stops every process it started."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)


@contextlib.contextmanager
def processes(tool: str = "curves", keep: bool = False) -> Iterator[Processes]:
    """A work folder and every process started in it, stopped by PID at the end (the folder
    is kept, with the logs, when something failed or ``keep`` asks); ``tool`` names both in
    messages."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gateway-{tool}-"))
    procs = Processes(workdir)
    ok = False
    try:
        yield procs
        ok = True
    finally:
        procs.stop_all()
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"{tool}: logs kept in {workdir}", file=sys.stderr)
