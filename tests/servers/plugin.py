"""Pytest fixtures that run the REAL model servers (TorchServe, Triton, MLServer) on loopback.

Install them first (idempotent, ~2 min the first time, well under a second after):

    bash tests/servers/setup.sh

Every server serves the model ``linear`` (4 -> 2, no bias) in two versions: v1 has weight
W1 = [[1, 0, 0, 0], [0, 1, 1, 1]], v2 has 2 * W1, so [1, 2, 3, 4] -> v1 [1, 9], v2 [2, 18].

Fixtures:
    torchserve_server, triton_server, mlserver_server   session-scoped ServerHandle each
    all_servers        session-scoped AllServers: starts whichever are not yet running, in parallel
    start_triton       function-scoped factory: every call starts a NEW independent Triton
                       (optional extra command-line arguments: start_triton("--trace-config", ...))
    model_server_pool  the session-scoped pool behind them (rarely needed directly)

Each server gets free 127.0.0.1 ports and a private run directory (logs included) under
pytest's basetemp; a fixture waits for real readiness for at most GATEWAY_SERVERS_READY_TIMEOUT
seconds (default 180) and then FAILS with the server's log tail. Servers run in their own
process groups, are stopped by PID at teardown, and a watchdog process SIGKILLs any that are
left if pytest itself dies.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_ports

HERE = Path(__file__).resolve().parent
KINDS: tuple[str, ...] = ("torchserve", "triton", "mlserver")
READY_TIMEOUT_S = float(os.environ.get("GATEWAY_SERVERS_READY_TIMEOUT", "180"))
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.1
# a port taken between free_ports() and the server's bind: "Address already in use" (Python,
# Java's BindException), Triton's "Socket '127.0.0.1:N' already in use"
_BIND_ERRORS = ("already in use", "bindexception", "errno 98")


def servers_dir() -> Path:
    """Where tests/servers/setup.sh installs the venvs and model artifacts."""
    env = os.environ.get("GATEWAY_SERVERS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "model-gateway" / "servers"


def _source_hash() -> str:
    """Same value as setup.sh's src_hash(): sha256 of `sha256sum` over the sorted inputs."""
    names = ["setup.sh"]
    names += [p.name for p in HERE.glob("constraints-*.txt") if p.is_file()]
    for p in (HERE / "models").rglob("*"):
        rel = p.relative_to(HERE)
        if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in rel.parts:
            names.append(rel.as_posix())
    lines = "".join(
        f"{hashlib.sha256((HERE / n).read_bytes()).hexdigest()}  {n}\n"
        for n in sorted(names, key=lambda n: n.encode())
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def _checked_servers_dir() -> Path:
    sd = servers_dir()
    stamp = sd / ".stamp"
    if not stamp.is_file():
        pytest.fail(
            f"model servers are not installed in {sd}: run `bash tests/servers/setup.sh` "
            "(set GATEWAY_SERVERS_DIR to use another folder)",
            pytrace=False,
        )
    lines = stamp.read_text().splitlines()
    if not lines or lines[0] != f"src={_source_hash()}":
        pytest.fail(
            f"model servers in {sd} are out of date with tests/servers/: "
            "re-run `bash tests/servers/setup.sh`",
            pytrace=False,
        )
    return sd


# --------------------------------------------------------------------------- processes (/proc)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None if it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _live_pids() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgrp) for every live process."""
    out: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[0] not in ("Z", "X"):
                out[int(name)] = (st[1], st[2])
    return out


def _tree(pid: int, pgid: int) -> list[int]:
    """Live members of process group `pgid` plus all live descendants of `pid`."""
    table = _live_pids()
    found = {p for p, (_, grp) in table.items() if grp == pgid}
    stack = [pid]
    while stack:
        parent = stack.pop()
        for p, (ppid, _) in table.items():
            if ppid == parent and p not in found:
                found.add(p)
                stack.append(p)
        if _alive(parent):
            found.add(parent)
    return sorted(found)


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def _wait_gone(pids: Iterable[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if _alive(p)]
        if pending:
            time.sleep(0.05)


class _Watchdog:
    """A helper process that SIGKILLs the registered process groups when pytest dies.

    It reads "+PGID"/"-PGID" (and "+DIR"/"-DIR" for scratch folders) lines on stdin; on EOF
    (pytest exited, however it exited) it kills the groups and removes the folders still
    registered. Normal teardown unregisters them first.
    """

    _CODE = (
        "import os, shutil, signal, sys\n"
        "items = set()\n"
        "for line in sys.stdin:\n"
        "    op, item = line[:1], line[1:].rstrip('\\n')\n"
        "    if op == '+': items.add(item)\n"
        "    elif op == '-': items.discard(item)\n"
        "for item in sorted(items, key=lambda i: not i.isdigit()):  # groups first\n"
        "    try:\n"
        "        if item.isdigit(): os.killpg(int(item), signal.SIGKILL)\n"
        "        else: shutil.rmtree(item, ignore_errors=True)\n"
        "    except OSError: pass\n"
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", self._CODE],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,  # a Ctrl-C in the terminal must not kill it
                )
                atexit.register(self.close)
            assert self._proc.stdin is not None
            with contextlib.suppress(OSError):
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()

    def add(self, item: int | Path) -> None:
        """Register a process group (int) or a scratch folder (absolute Path)."""
        self._send(f"+{item}")

    def remove(self, item: int | Path) -> None:
        self._send(f"-{item}")

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_WATCHDOG = _Watchdog()
_STARTUP_REPORT: list[str] = []


# --------------------------------------------------------------------------- handle


@dataclass(eq=False)
class ServerHandle:
    """A running real model server. Only `kind`, `url`, `management_url` and `pid` are the
    stable API; the other fields are for diagnostics."""

    kind: str  # "torchserve" | "triton" | "mlserver"
    url: str  # inference base URL, e.g. "http://127.0.0.1:40123"
    management_url: str | None  # TorchServe management API base URL, else None
    pid: int  # PID of the real server process (for TorchServe: the Java frontend)
    metrics_url: str = ""  # Prometheus base URL (GET {metrics_url}/metrics)
    grpc_address: str = ""  # "127.0.0.1:PORT" (TorchServe: the gRPC inference API)
    run_dir: Path = field(default_factory=Path)  # config, logs, per-run model repo
    log_path: Path = field(default_factory=Path)  # the server's stdout+stderr
    startup_seconds: float = 0.0  # launch -> ready
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _extra_logs: tuple[Path, ...] = field(default=(), repr=False)
    _cleanup_dirs: tuple[Path, ...] = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _done: bool = field(default=False, repr=False)

    @property
    def pgid(self) -> int:
        """The server's process group (its launcher's PID; it started a new session)."""
        return self._proc.pid if self._proc is not None else self.pid

    @property
    def alive(self) -> bool:
        return _alive(self.pid)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Graceful stop: SIGTERM to `pid`, wait up to `timeout` s, then SIGKILL everything."""
        with self._lock:
            if self._done:
                return
            self._done = True
            proc = self._proc
            if proc is not None and proc.poll() is None:
                if _alive(self.pid) and (st := _stat(self.pid)) and st[2] == self.pgid:
                    _signal([self.pid], signal.SIGTERM)
                else:  # the real server is gone already: stop its launcher
                    _signal([proc.pid], signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._sigkill_all()
            self._finish()

    def kill(self) -> None:
        """SIGKILL the server and its worker processes now (for fault tests)."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self._sigkill_all()
            self._finish()

    def _sigkill_all(self) -> None:
        pids = _tree(self.pid, self.pgid)
        if self._proc is not None and self._proc.poll() is None:
            pids.append(self._proc.pid)
        _signal(pids, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
        _wait_gone(pids, 10)

    def _finish(self) -> None:
        # Workers or Python-backend stubs that outlived the server: no mercy.
        leftovers = _tree(self.pid, self.pgid)
        _signal(leftovers, signal.SIGKILL)
        _wait_gone(leftovers, 10)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        _WATCHDOG.remove(self.pgid)
        for d in self._cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)
            _WATCHDOG.remove(d)

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for path in (self.log_path, *self._extra_logs):
            parts.append(f"--- {path} (last {lines} lines) ---\n{_tail(path, lines)}")
        return "\n".join(parts)


@dataclass(frozen=True)
class AllServers:
    torchserve: ServerHandle
    triton: ServerHandle
    mlserver: ServerHandle

    def __iter__(self) -> Iterator[ServerHandle]:
        return iter((self.torchserve, self.triton, self.mlserver))


def _tail(path: Path, lines: int) -> str:
    try:
        data = path.read_bytes()[-65536:].decode(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------- launching


class StartError(Exception):
    pass


def _server_env(venv: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    if not found:
        raise StartError(f"no site-packages in {venv}: re-run tests/servers/setup.sh")
    return found[-1]


def _popen(cmd: list[str], run_dir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = run_dir / "server.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stopped/killed as a unit, no Ctrl-C
        )
    _WATCHDOG.add(proc.pid)
    return proc


class _Launch:
    """One server launch: Popen now, `wait_ready()` later (so several can start in parallel)."""

    def __init__(
        self, kind: str, sd: Path, run_dir: Path, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.kind = kind
        self.sd = sd
        self.run_dir = run_dir
        self.extra_args = extra_args  # appended to the server's command line (Triton only)
        self.attempt = 0
        self.handle: ServerHandle
        self._launch()

    def _launch(self) -> None:
        self.attempt += 1
        rd = self.run_dir / (f"{self.kind}" if self.attempt == 1 else f"{self.kind}-{self.attempt}")
        rd.mkdir(parents=True, exist_ok=False)
        self.t0 = time.monotonic()
        if self.kind == "torchserve":
            self.handle = self._launch_torchserve(rd)
        elif self.kind == "triton":
            self.handle = self._launch_triton(rd)
        elif self.kind == "mlserver":
            self.handle = self._launch_mlserver(rd)
        else:
            raise ValueError(f"unknown server kind {self.kind!r}")

    # -- per kind

    def _launch_torchserve(self, rd: Path) -> ServerHandle:
        venv = self.sd / "ts-venv"
        inf, mgmt, met, g_inf, g_mgmt = free_ports(5)
        # Private TMPDIR: pid file (.model_server.pid), worker unix sockets, unpacked .mar files.
        # Short path under /tmp because of the 108-byte unix-socket path limit.
        tmp = Path(tempfile.mkdtemp(prefix="gw-ts-", dir="/tmp" if Path("/tmp").is_dir() else None))
        _WATCHDOG.add(tmp)
        logs = rd / "logs"
        logs.mkdir()
        cfg = rd / "config.properties"
        cfg.write_text(
            "\n".join(
                [
                    f"inference_address=http://127.0.0.1:{inf}",
                    f"management_address=http://127.0.0.1:{mgmt}",
                    f"metrics_address=http://127.0.0.1:{met}",
                    # 0.12 has no switch to turn gRPC off: give it free loopback ports too
                    "grpc_inference_address=127.0.0.1",
                    "grpc_management_address=127.0.0.1",
                    f"grpc_inference_port={g_inf}",
                    f"grpc_management_port={g_mgmt}",
                    f"model_store={self.sd / 'ts' / 'model_store'}",
                    "disable_token_authorization=true",
                    "enable_model_api=true",
                    "install_py_dep_per_model=false",
                    "default_workers_per_model=1",
                    "metrics_mode=prometheus",
                    "vmargs=-Xmx256m -XX:+UseSerialGC",
                    "",
                ]
            )
        )
        env = _server_env(
            venv,
            TMPDIR=str(tmp),
            TEMP=str(tmp),
            LOG_LOCATION=str(logs),
            METRICS_LOCATION=str(logs),
        )
        cmd = [
            str(venv / "bin" / "torchserve"),
            "--start",
            "--foreground",
            "--ncs",
            "--disable-token-auth",
            "--model-store",
            str(self.sd / "ts" / "model_store"),
            "--ts-config",
            str(cfg),
            "--models",
            "linear=linear.mar",
        ]
        proc = _popen(cmd, rd, env)
        return ServerHandle(
            kind="torchserve",
            url=f"http://127.0.0.1:{inf}",
            management_url=f"http://127.0.0.1:{mgmt}",
            pid=proc.pid,  # the Python wrapper until the Java PID is known (wait_ready)
            metrics_url=f"http://127.0.0.1:{met}",
            grpc_address=f"127.0.0.1:{g_inf}",
            run_dir=rd,
            log_path=rd / "server.log",
            _proc=proc,
            _extra_logs=(logs / "ts_log.log", logs / "model_log.log"),
            _cleanup_dirs=(tmp,),
        )

    def _launch_triton(self, rd: Path) -> ServerHandle:
        venv = self.sd / "tr-venv"
        sp = _site_packages(venv)
        http, grpc, met = free_ports(3)
        env = _server_env(venv, LD_LIBRARY_PATH=str(sp / "nvidia_pytriton.libs"))
        cmd = [
            str(sp / "pytriton" / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.sd / 'triton' / 'models'}",
            f"--backend-directory={self.sd / 'triton' / 'backends'}",
            "--http-address=127.0.0.1",
            f"--http-port={http}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={grpc}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={met}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=3",
            *self.extra_args,
        ]
        proc = _popen(cmd, rd, env)
        return ServerHandle(
            kind="triton",
            url=f"http://127.0.0.1:{http}",
            management_url=None,
            pid=proc.pid,
            metrics_url=f"http://127.0.0.1:{met}",
            grpc_address=f"127.0.0.1:{grpc}",
            run_dir=rd,
            log_path=rd / "server.log",
            _proc=proc,
        )

    def _launch_mlserver(self, rd: Path) -> ServerHandle:
        venv = self.sd / "ml-venv"
        http, grpc, met = free_ports(3)
        models = rd / "models"  # per-run copy: settings.json holds this run's ports
        shutil.copytree(self.sd / "mls" / "models", models)
        settings = {
            "host": "127.0.0.1",
            "http_port": http,
            "grpc_port": grpc,
            "metrics_port": met,
            "parallel_workers": 0,
            "metrics_dir": str(rd / ".metrics"),
            "environments_dir": str(rd / ".envs"),
        }
        (models / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
        cmd = [str(venv / "bin" / "mlserver"), "start", str(models)]
        proc = _popen(cmd, rd, _server_env(venv))
        return ServerHandle(
            kind="mlserver",
            url=f"http://127.0.0.1:{http}",
            management_url=None,
            pid=proc.pid,
            metrics_url=f"http://127.0.0.1:{met}",
            grpc_address=f"127.0.0.1:{grpc}",
            run_dir=rd,
            log_path=rd / "server.log",
            _proc=proc,
        )

    # -- readiness

    def wait_ready(self, deadline: float) -> ServerHandle:
        """Block until the server is really ready; retries once on a port clash."""
        while True:
            try:
                with httpx.Client(timeout=5.0, trust_env=False) as client:
                    self._wait(client, deadline)
            except StartError as exc:
                h = self.handle
                died = h._proc is not None and h._proc.poll() is not None
                log = _tail(h.log_path, 200).lower()
                h.kill()
                if died and self.attempt < 2 and any(e in log for e in _BIND_ERRORS):
                    self._launch()  # another process took one of our free ports: new ports
                    continue
                raise StartError(
                    f"{self.kind} did not become ready: {exc}\n"
                    f"(run dir {h.run_dir})\n{h.log_tail()}"
                ) from None
            h = self.handle
            h.startup_seconds = round(time.monotonic() - self.t0, 2)
            _STARTUP_REPORT.append(
                f"{h.kind} ready in {h.startup_seconds:.2f} s at {h.url} (pid {h.pid})"
            )
            return h

    def _poll(self, deadline: float, what: str, check: Callable[[], bool]) -> None:
        proc = self.handle._proc
        while True:
            if proc is not None and proc.poll() is not None:
                raise StartError(f"process exited with code {proc.returncode} ({what})")
            try:
                if check():
                    return
            except (httpx.HTTPError, OSError, ValueError):
                pass  # not listening yet, or a partial answer
            if time.monotonic() > deadline:
                raise StartError(f"timed out after {READY_TIMEOUT_S:.0f} s waiting for {what}")
            time.sleep(_POLL_S)

    def _wait(self, client: httpx.Client, deadline: float) -> None:
        h = self.handle
        if h.kind == "torchserve":
            self._wait_torchserve(client, deadline)
            return
        # Triton: /v2/health/ready is strict (all models loaded); MLServer's is not, so the
        # per-version endpoints are checked too (on both, for symmetry).
        for path in (
            "/v2/health/ready",
            "/v2/models/linear/versions/1/ready",
            "/v2/models/linear/versions/2/ready",
        ):
            self._poll(deadline, f"GET {path} == 200", _get_ok(client, h.url + path))

    def _wait_torchserve(self, client: httpx.Client, deadline: float) -> None:
        h = self.handle
        assert h.management_url is not None
        assert h._cleanup_dirs
        pid_file = h._cleanup_dirs[0] / ".model_server.pid"

        def java_pid_known() -> bool:
            text = pid_file.read_text().strip() if pid_file.is_file() else ""
            if text.isdigit() and _alive(int(text)):
                h.pid = int(text)  # the Java frontend, not the Python wrapper
                return True
            return False

        self._poll(deadline, f"the Java PID in {pid_file}", java_pid_known)
        versions_url = f"{h.management_url}/models/linear/all"
        self._poll(deadline, "linear 1.0 workers READY", _ts_ready(client, versions_url, {"1.0"}))
        # Register v2 synchronously. NO Content-Type header: with `application/json` and an
        # empty body TorchServe 0.12 answers 500 (NullPointerException).
        resp = client.post(
            f"{h.management_url}/models",
            params={"url": "linear-v2.mar", "initial_workers": "1", "synchronous": "true"},
            timeout=max(5.0, deadline - time.monotonic()),
        )
        if resp.status_code != 200:
            raise StartError(f"registering linear 2.0 -> {resp.status_code} {resp.text}")
        self._poll(
            deadline,
            "linear 1.0 and 2.0 workers READY",
            _ts_ready(client, versions_url, {"1.0", "2.0"}),
        )


def _get_ok(client: httpx.Client, url: str) -> Callable[[], bool]:
    return lambda: client.get(url).status_code == 200


def _ts_ready(client: httpx.Client, url: str, versions: set[str]) -> Callable[[], bool]:
    """TorchServe readiness: every wanted version has >= 1 worker and all its workers READY.
    (Never /ping: it says Healthy while the only worker is crash-looping.)"""

    def check() -> bool:
        resp = client.get(url)
        if resp.status_code != 200:
            return False
        ready = {
            str(m.get("modelVersion"))
            for m in resp.json()
            if m.get("workers") and all(w.get("status") == "READY" for w in m["workers"])
        }
        return versions <= ready

    return check


def start_servers(
    kinds: Iterable[str], run_dir: Path, triton_args: tuple[str, ...] = ()
) -> dict[str, ServerHandle]:
    """Start servers concurrently (Popen all, then wait for all); raise StartError on failure.
    On failure the ones that did start are stopped too. `triton_args` are appended to
    Triton's command line."""
    sd = _checked_servers_dir()
    deadline = time.monotonic() + READY_TIMEOUT_S
    launches: list[_Launch] = []
    try:
        for kind in kinds:
            launches.append(_Launch(kind, sd, run_dir, triton_args if kind == "triton" else ()))
    except (StartError, OSError) as exc:
        _stop_all(launch.handle for launch in launches)
        raise StartError(f"could not launch the servers: {exc}") from exc
    handles: dict[str, ServerHandle] = {}
    errors: list[str] = []
    # One waiting thread per server, so each readiness time is its own.
    with ThreadPoolExecutor(max_workers=max(1, len(launches))) as pool:
        futures = {launch.kind: pool.submit(launch.wait_ready, deadline) for launch in launches}
        for kind, future in futures.items():
            try:
                handles[kind] = future.result()
            except StartError as exc:
                errors.append(str(exc))
    if errors:
        _stop_all(handles.values())
        raise StartError("\n\n".join(errors))
    return handles


def _stop_all(handles: Iterable[ServerHandle]) -> None:
    threads = [threading.Thread(target=h.stop) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --------------------------------------------------------------------------- fixtures


class ServerPool:
    """Session-wide servers, started lazily; `start()` launches the missing ones in parallel."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.handles: dict[str, ServerHandle] = {}
        self.failures: dict[str, str] = {}
        self._lock = threading.Lock()

    def start(self, kinds: Iterable[str]) -> dict[str, ServerHandle]:
        kinds = list(kinds)
        with self._lock:
            for kind in kinds:
                if kind in self.failures:
                    pytest.fail(self.failures[kind], pytrace=False)
            missing = [k for k in kinds if k not in self.handles]
            error = ""
            if missing:
                try:
                    self.handles.update(start_servers(missing, self.run_dir))
                except StartError as exc:
                    error = str(exc)
                    for kind in missing:  # fail fast for later tests, no second 180 s wait
                        self.failures[kind] = f"model server(s) {missing} failed to start:\n{exc}"
            if error:
                pytest.fail(error, pytrace=False)  # outside `except`: no chained traceback
            return {k: self.handles[k] for k in kinds}

    def get(self, kind: str) -> ServerHandle:
        return self.start([kind])[kind]

    def close(self) -> None:
        with self._lock:
            _stop_all(self.handles.values())


@pytest.fixture(scope="session")
def model_server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("model-servers"))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def all_servers(model_server_pool: ServerPool) -> AllServers:
    """All three servers, started concurrently (those not already running)."""
    h = model_server_pool.start(KINDS)
    return AllServers(torchserve=h["torchserve"], triton=h["triton"], mlserver=h["mlserver"])


@pytest.fixture(scope="session")
def torchserve_server(model_server_pool: ServerPool) -> ServerHandle:
    """TorchServe: `linear` 1.0 (default) and 2.0, all workers READY."""
    return model_server_pool.get("torchserve")


@pytest.fixture(scope="session")
def triton_server(model_server_pool: ServerPool) -> ServerHandle:
    """Triton (python backend): `linear` versions 1 and 2 (default: newest)."""
    return model_server_pool.get("triton")


@pytest.fixture(scope="session")
def mlserver_server(model_server_pool: ServerPool) -> ServerHandle:
    """MLServer (sklearn): `linear` versions "1" and "2" (default: highest)."""
    return model_server_pool.get("mlserver")


@pytest.fixture
def start_triton(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """Factory: each call starts a NEW independent Triton (own ports, shared model repo).
    Positional string arguments are appended to its command line.
    All of them are stopped (if still alive) at teardown."""
    started: list[ServerHandle] = []

    def start(*args: str) -> ServerHandle:
        error = ""
        try:
            run_dir = tmp_path / f"triton-{len(started)}"
            handle = start_servers(["triton"], run_dir, args)["triton"]
        except StartError as exc:
            error = str(exc)
        if error:
            pytest.fail(error, pytrace=False)
        started.append(handle)
        return handle

    yield start
    _stop_all(started)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _STARTUP_REPORT:
        terminalreporter.write_sep("-", "model servers")
        for line in _STARTUP_REPORT:
            terminalreporter.write_line(line)
