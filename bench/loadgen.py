"""What every load generator (wrk, h2load) reports, and running one so that its own CPU time is
known: the harness reaps it with ``wait4``, whose resource usage is the generator's ``utime +
stime`` over its whole run. Its output goes to a file (no pipe to drain while waiting)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.procs import BenchError, cpu_list

_POLL = 0.05  # seconds between checks of a running generator (Popen.wait's own pace)


@dataclass(frozen=True)
class LoadResult:
    """One measured run of a load generator. ``p50_ms``/``p99_ms`` are None for h2load, which
    reports min, max, mean and standard deviation of its request times, not percentiles."""

    tool: str  # "wrk" or "h2load"
    requests: int  # completed
    seconds: float
    rps: float
    mean_ms: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    socket_errors: int  # wrk's socket errors; h2load's failed streams and timeouts
    load_cpu_seconds: float = 0.0  # the generator's own utime + stime over its run
    load_wall_seconds: float = 0.0  # the generator's run, start to exit
    data_bytes: int | None = None  # h2load: response DATA bytes (the gRPC messages' frames)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    @property
    def load_cpu_us_per_request(self) -> float | None:
        """The load generator's own CPU per completed request."""
        return self.load_cpu_seconds * 1e6 / self.requests if self.requests else None

    @property
    def utilisation(self) -> float | None:
        """The generator's CPU time over its wall time: 1.0 is one core busy all along (both
        run one thread, ``-t1``)."""
        wall = self.load_wall_seconds
        return self.load_cpu_seconds / wall if wall > 0 else None


@dataclass(frozen=True)
class Finished:
    output: str
    returncode: int
    cpu_seconds: float
    wall_seconds: float


class Running:
    """A load generator started in the background, pinned with ``taskset`` (which execs it: the
    PID is the generator's). Not reaped until ``finish``, so that its rusage is ours to read."""

    def __init__(self, cmd: Sequence[str], cpus: Sequence[int]) -> None:
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            ["taskset", "-c", cpu_list(cpus), *cmd],
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self._reaped = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self, timeout: float = 0.0) -> bool:
        """True once the generator has exited (it stays a zombie until ``finish``)."""
        deadline = time.monotonic() + timeout
        while True:
            flags = os.WEXITED | os.WNOWAIT | os.WNOHANG
            if self._reaped or os.waitid(os.P_PID, self.pid, flags) is not None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_POLL, left))

    def finish(self, seconds: float, interrupt: bool = False, grace: float = 60.0) -> Finished:
        """Wait for the run. ``interrupt`` (wrk, which takes whole seconds): a fractional
        ``seconds`` runs to the next whole second and is ended by SIGINT at ``seconds`` (wrk
        then reports). One that hangs past ``seconds`` + ``grace`` is killed."""
        try:
            whole = max(1, math.ceil(seconds))
            fractional = interrupt and seconds != whole
            if fractional and not self.exited(self.started + seconds - time.monotonic()):
                self.popen.send_signal(signal.SIGINT)
            if not self.exited(self.started + whole + grace - time.monotonic()):
                self.popen.kill()
            _, status, usage = os.wait4(self.pid, 0)
            self._reaped = True
            wall = time.monotonic() - self.started
            code = os.waitstatus_to_exitcode(status)
            self.popen.returncode = code
            self._out.seek(0)
            output = self._out.read().decode(errors="replace")
            return Finished(output, code, usage.ru_utime + usage.ru_stime, wall)
        finally:
            self.close()

    def close(self) -> None:
        """Kill and reap the generator if it still runs (Ctrl-C, an error)."""
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(self.pid, 0)
            self._reaped = True
            self.popen.returncode = -signal.SIGKILL
        self._out.close()


def require_success(tool: str, done: Finished) -> None:
    # SIGINT ends wrk's fractional runs: it exits 0 after reporting
    if done.returncode != 0:
        raise BenchError(f"{tool} failed ({done.returncode}):\n{done.output}")
