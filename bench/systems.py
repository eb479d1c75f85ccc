"""The systems under test and their fixtures: nginx (upstream and proxy), Redis, the forwarder,
the gateway (open, with its gRPC frontend where asked, and with the full auth + limits + cache
chain) and, if installed, Triton (HTTP, gRPC and its metrics)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.peers import CHAT_PATH, CHAT_REPLY
from bench.procs import (
    BenchError,
    Proc,
    Processes,
    clean_env,
    free_port,
    pin,
    port_open,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = str(Path(sys.executable).with_name("gateway"))
TENANT, AUDIENCE, ISSUER = "bench", "model-gateway-bench", "bench"

REPLY = (
    '{"model_name":"linear","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"FP32",'
    '"shape":[1,2],"data":[1.0,9.0]}]}'
)
METADATA = (
    '{"name":"linear","versions":["1"],"platform":"bench",'
    '"inputs":[{"name":"INPUT0","datatype":"FP32","shape":[-1,4]}],'
    '"outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[-1,2]}]}'
)
_MODEL = "^/v2/models/linear(/versions/1)?"
UPSTREAM_SERVER = f"""
    client_max_body_size 64m;
    location = /v2/health/ready {{ return 200 ''; }}
    location = /v2/health/live {{ return 200 ''; }}
    location ~ {_MODEL}/ready$ {{ return 200 ''; }}
    location ~ {_MODEL}$ {{ return 200 '{METADATA}'; }}
    location ~ {_MODEL}/infer$ {{ return 200 '{REPLY}'; }}
    location = {CHAT_PATH} {{ return 200 '{CHAT_REPLY}'; }}
"""
PROXY_SERVER = """
    location / {
      proxy_pass http://upstream_bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
"""


def _temp_paths(nginx: str, folder: Path) -> str:
    """Every temp path this nginx build has, in our folder (never /var/lib/nginx)."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    kinds = ["client_body"] + [
        k for k in ("proxy", "fastcgi", "uwsgi", "scgi") if f"--http-{k}-temp-path" in built
    ]
    kinds = [k for k in kinds if f"--without-http_{k}_module" not in built]
    return "\n".join(f"  {k}_temp_path {folder / k};" for k in kinds)


def start_nginx(
    procs: Processes, nginx: str, name: str, cpus: Sequence[int], server: str, upstream: str = ""
) -> tuple[Proc, int]:
    """One nginx process (no master), its own prefix, pid, logs and temp paths."""
    folder = procs.workdir / name
    folder.mkdir()
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{_temp_paths(nginx, folder)}
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  default_type application/json;
  {upstream}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{server}
  }}
}}
"""
    )
    cmd = [nginx, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)]
    proc = procs.spawn(name, cmd, cpus)
    wait_until(f"{name} on port {port}", port_open(port), proc, timeout=20)
    return proc, port


def start_upstream(procs: Processes, nginx: str, cpus: Sequence[int]) -> tuple[Proc, str]:
    proc, port = start_nginx(procs, nginx, "upstream", cpus, UPSTREAM_SERVER)
    return proc, f"http://127.0.0.1:{port}"


def start_proxy(
    procs: Processes, nginx: str, cpus: Sequence[int], upstream: str
) -> tuple[Proc, str]:
    block = (
        f"upstream upstream_bench {{ server {upstream.removeprefix('http://')}; keepalive 64; }}"
    )
    proc, port = start_nginx(procs, nginx, "nginx-proxy", cpus, PROXY_SERVER, block)
    return proc, f"http://127.0.0.1:{port}"


def start_redis(procs: Processes, cpus: Sequence[int]) -> tuple[Proc, str]:
    port = free_port()
    folder = procs.workdir / "redis"
    folder.mkdir()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--dir", str(folder), "--logfile", str(folder / "redis.log")]
    proc = procs.spawn("redis", cmd, cpus)

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    wait_until(f"redis on port {port}", pong, proc, timeout=20)
    return proc, f"redis://127.0.0.1:{port}/0"


# gateway-batch: joins up to 64 rows, the first request waits at most 2 ms for others
BATCHING = "{max_batch_size: 64, max_delay: 2ms, max_in_flight_per_replica: 1}"


def open_routes(
    upstream: str,
    triton: str | None,
    tensor: bool = False,
    triton_grpc: str | None = None,
    batched: bool = False,
) -> str:
    """Scenarios 4, 5 (and the gateway in front of Triton): no auth, no limits, no cache.
    ``tensor``: the model ``tensor`` (input FP32 [-1, 3, 224, 224], declared) on the nginx
    upstream declared ``kind: triton``, so that a binary tensor body is forwarded as it came.
    ``triton_grpc`` (``host:port``): the model ``linear-triton-grpc`` on Triton over gRPC
    (``protocol: grpc``). ``batched``: the models ``nobatch`` and ``batch`` on Triton's
    ``batched_linear`` (tests/models: 5 ms per execute, no batching of its own), ``batch``
    with gateway-side batching."""
    text = f"""backends:
  up: {{kind: kserve, urls: ["{upstream}"], timeout: 10s}}
  up-http: {{kind: http, urls: ["{upstream}"], timeout: 10s}}
"""
    if triton is not None:
        text += f'  triton: {{kind: triton, urls: ["{triton}"], timeout: 10s}}\n'
    if triton_grpc is not None:
        text += (
            f"  triton-grpc: {{kind: triton, protocol: grpc, "
            f'urls: ["grpc://{triton_grpc}"], timeout: 10s}}\n'
        )
    if tensor:
        text += f'  up-triton: {{kind: triton, urls: ["{upstream}"], timeout: 10s}}\n'
    text += 'models:\n  linear: {versions: {"1": {backend: up, name: linear}}}\n'
    if triton is not None:
        text += (
            '  linear-triton: {versions: {"1": {backend: triton, name: linear, version: "1"}}}\n'
        )
    if batched and triton is not None:
        on = '{versions: {"1": {backend: triton, name: batched_linear, version: "1"'
        text += f"  nobatch: {on}}}}}}}\n"
        text += f"  batch: {on}, batching: {BATCHING}}}}}}}\n"
    if triton_grpc is not None:
        text += (
            "  linear-triton-grpc: "
            '{versions: {"1": {backend: triton-grpc, name: linear, version: "1"}}}\n'
        )
    if tensor:
        text += (
            '  tensor: {versions: {"1": {backend: up-triton, name: linear, version: "1",\n'
            "    inputs: [{name: INPUT0, datatype: FP32, shape: [-1, 3, 224, 224]}],\n"
            "    outputs: [{name: OUTPUT0, datatype: FP32, shape: [-1, 2]}]}}}\n"
        )
    return text + "routes:\n  - {path: /up/, backend: up-http, strip_prefix: true}\n"


def accepts(executable: str, routes: str, folder: Path) -> str | None:
    """None when ``executable check`` accepts ``routes``, else what it says (an older gateway
    without a key the routes use)."""
    path = folder / f"check-{secrets.token_hex(4)}.yaml"
    path.write_text(routes)
    env, cwd = gateway_env(executable)
    done = subprocess.run(
        [executable, "check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode == 0:
        return None
    return " ".join((done.stderr or done.stdout).split())[:300] or f"exit {done.returncode}"


def serves_grpc(executable: str) -> bool:
    """Whether this gateway has a gRPC frontend (``serve --grpc-port``)."""
    env, cwd = gateway_env(executable)
    done = subprocess.run(
        [executable, "serve", "--help"], capture_output=True, text=True, env=env, cwd=cwd
    )
    return "--grpc-port" in done.stdout


def full_routes(upstream: str, public_pem: Path, slow: bool = False) -> str:
    """Scenarios 6-8: API keys and JWTs required, the tenant's plan in Redis, the model cached
    (30 s, as bench/floor.py's entries). ``/openai/`` (passthrough to the upstream's
    OpenAI-shaped ``/v1/chat/completions``, same key, same plan, no cache) is the gateway's
    side of the LiteLLM comparison. ``slow``, for a gateway under valgrind: the entries live an
    hour and the limit store has 30 s to answer (not 0.25 s: past it, a request is admitted
    without its limit and without its cache lookup, which is another request's work)."""
    ttl = "1h" if slow else "30s"
    limits = "rate_limits: {store_timeout: 30s}\n" if slow else ""
    return f"""backends:
  up: {{kind: kserve, urls: ["{upstream}"], timeout: 10s}}
  up-http: {{kind: http, urls: ["{upstream}"], timeout: 10s}}
routes:
  - {{path: /openai/, backend: up-http, strip_prefix: true, methods: [POST],
     scopes: ["predict:linear"]}}
models:
  linear:
    versions: {{"1": {{backend: up, name: linear}}}}
    deterministic: true
    cache: {{ttl: {ttl}}}
plans:
  bench: {{rate: 1000000/s, burst: 1000000}}
{limits}auth:
  required: true
  api_keys: true
  jwt:
    - issuer: {ISSUER}
      algorithms: [RS256]
      audience: [{AUDIENCE}]
      keys: {{k1: "{public_pem}"}}
"""


@dataclass(frozen=True)
class Launch:
    """How gateway processes start: ``wrap``, a tool that runs the gateway's interpreter (such
    as valgrind; empty: the console script itself), and how long one may take to answer (its
    readiness, the admin calls that make a tenant). A wrapped gateway is a slow one: its full
    config allows for that (``full_routes``)."""

    wrap: tuple[str, ...] = ()
    timeout: float = 60.0

    def command(self, executable: str) -> list[str]:
        """``executable`` itself, or ``wrap`` + its interpreter + the console script."""
        if not self.wrap:
            return [executable]
        python = interpreter(executable)
        if python is None:
            raise BenchError(f"{executable} has no #! line naming its Python")
        return [*self.wrap, python, executable]

    def module(self, name: str, *args: str) -> list[str]:
        """``python -m name args`` on this harness's Python (the forwarder, the floor), behind
        ``wrap``."""
        return [*self.wrap, sys.executable, "-m", name, *args]

    @property
    def started(self) -> float:
        """How long a Python reference (the forwarder, the floor) may take to listen: 30 s,
        or ``timeout`` when wrapped."""
        return self.timeout if self.wrap else 30.0


DIRECT = Launch()


def start_forwarder(
    procs: Processes, cpus: Sequence[int], upstream: str, launch: Launch = DIRECT
) -> tuple[Proc, str]:
    """``bench/forwarder.py``, the fixed reference; ``launch``: how it starts (as the gateways:
    under callgrind for ``bench.instructions``)."""
    port = free_port()
    cmd = launch.module("bench.forwarder", "--upstream", upstream, "--port", str(port))
    proc = procs.spawn("forwarder", cmd, cpus, env=clean_env(), cwd=ROOT)
    wait_until(f"the forwarder on port {port}", port_open(port), proc, launch.started)
    return proc, f"http://127.0.0.1:{port}"


def start_floor(
    procs: Processes,
    cpus: Sequence[int],
    upstream: str,
    redis: str,
    launch: Launch = DIRECT,
) -> tuple[Proc, str, str]:
    """``bench/floor.py`` (the full chain's work and nothing else) with an API key of its own;
    ``launch`` as for the forwarder."""
    port, api_key = free_port(), secrets.token_urlsafe(24)
    cmd = launch.module("bench.floor", "--upstream", upstream, "--redis", redis)
    cmd += ["--port", str(port)]
    env = clean_env(BENCH_FLOOR_API_KEY=api_key)
    proc = procs.spawn("floor", cmd, cpus, env=env, cwd=ROOT)
    wait_until(f"bench.floor on port {port}", port_open(port), proc, launch.started)
    return proc, f"http://127.0.0.1:{port}", api_key


@dataclass
class Gateway:
    proc: Proc
    url: str
    grpc_address: str | None = None  # "127.0.0.1:PORT" when its gRPC frontend is on


def gateway_env(executable: str, **extra: str) -> tuple[dict[str, str], Path]:
    """The environment and working directory of a gateway process. Another installation's
    gateway (a baseline) runs outside this tree and without PYTHONPATH, so that it can only
    import its own code."""
    env = clean_env(**extra)
    if executable == GATEWAY:
        return env, ROOT
    env.pop("PYTHONPATH", None)
    return env, Path(tempfile.gettempdir())


def interpreter(executable: str) -> str | None:
    """The Python a console script runs (its ``#!`` line), or None if it has none."""
    try:
        with open(executable, "rb") as script:
            first = script.readline().decode(errors="replace")
    except OSError:
        return None
    python = first[2:].strip() if first.startswith("#!") else ""
    return python if python and Path(python).is_file() else None


def gateway_code(executable: str) -> str | None:
    """Where the ``gateway`` package that ``executable`` runs is (its interpreter, read from the
    console script's ``#!`` line, imports it as the gateway would), or None if unknown."""
    python = interpreter(executable)
    if python is None:
        return None
    env, cwd = gateway_env(executable)
    code = "import gateway; print(gateway.__file__)"
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def start_gateway(
    procs: Processes,
    name: str,
    routes: str,
    cpus: Sequence[int],
    workers: int,
    env: dict[str, str] | None = None,
    executable: str = GATEWAY,
    grpc: bool = False,
    launch: Launch = DIRECT,
) -> Gateway:
    """``executable serve`` (this venv's gateway, or another installation's) with ``routes``;
    ``grpc``: its gRPC frontend on a port of its own too; ``launch``: how it is started."""
    path = procs.workdir / f"{name}.yaml"
    path.write_text(routes)
    port = free_port()
    cmd = [*launch.command(executable), "serve", "--config", str(path)]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-watch", "--log-level", "warning"]
    grpc_port = free_port() if grpc else None
    if grpc_port is not None:
        cmd += ["--grpc-port", str(grpc_port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    full_env, cwd = gateway_env(executable, **(env or {}))
    proc = procs.spawn(name, cmd, cpus, env=full_env, cwd=cwd)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return bool(httpx.get(f"{url}/readyz", timeout=2).json().get("status") == "ready")
        except (httpx.HTTPError, ValueError):
            return False

    wait_until(f"{name} ready at {url}/readyz", ready, proc, timeout=launch.timeout)
    if grpc_port is None:
        return Gateway(proc, url)
    wait_until(f"{name}'s gRPC port {grpc_port}", port_open(grpc_port), proc, launch.timeout)
    return Gateway(proc, url, f"127.0.0.1:{grpc_port}")


@dataclass
class Credentials:
    api_key: str
    token: str


@dataclass(frozen=True)
class JwtSigner:
    """A fresh RSA-2048 key: its public PEM (which the auth config names) and an RS256 token
    for the bench tenant. One per run, shared by the gateway under test and the baseline."""

    public_pem: Path
    token: str

    @classmethod
    def new(cls, pem: Path) -> JwtSigner:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        now = int(time.time())
        claims: dict[str, object] = {"iss": ISSUER, "sub": "bench-client", "aud": AUDIENCE}
        claims |= {"tenant": TENANT, "scope": "predict:linear", "iat": now, "exp": now + 7 * 86400}
        token = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
        return cls(pem, token)


def start_full_gateway(
    procs: Processes,
    cpus: Sequence[int],
    workers: int,
    upstream: str,
    redis: str,
    signer: JwtSigner,
    name: str = "gateway-auth",
    executable: str = GATEWAY,
    launch: Launch = DIRECT,
) -> tuple[Gateway, Credentials]:
    """The full chain (its own Redis prefix), then a tenant on the high plan with an API key,
    created through the admin API; the JWT is the signer's."""
    admin = secrets.token_urlsafe(24)
    env = {
        "GATEWAY_REDIS_URL": redis,
        "GATEWAY_REDIS_PREFIX": f"bench{secrets.token_hex(3)}:",
        "GATEWAY_SECRET": secrets.token_urlsafe(32),
        "GATEWAY_ADMIN_TOKEN": admin,
    }
    routes = full_routes(upstream, signer.public_pem, slow=bool(launch.wrap))
    gateway = start_gateway(procs, name, routes, cpus, workers, env, executable, launch=launch)
    headers = {"Authorization": f"Bearer {admin}"}
    timeout = max(10.0, launch.timeout)
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=timeout) as client:
        tenant = {"name": TENANT, "plan": "bench", "scopes": ["predict:*"]}
        made = client.post("/admin/tenants", json=tenant)
        if made.status_code != 201:
            raise BenchError(f"{name}: POST /admin/tenants -> {made.status_code} {made.text}")
        key = client.post(
            f"/admin/tenants/{TENANT}/keys", json={"name": "bench", "scopes": ["predict:linear"]}
        )
        if key.status_code != 201:
            raise BenchError(
                f"{name}: POST /admin/tenants/{TENANT}/keys -> {key.status_code} {key.text}"
            )
    return gateway, Credentials(api_key=key.json()["key"], token=signer.token)


def triton_available() -> str | None:
    """None when the real Triton is installed and current, else why scenario 9 is skipped."""
    try:
        from tests.servers import plugin
    except ImportError as exc:
        return f"cannot import tests.servers.plugin ({exc})"
    stamp = plugin.servers_dir() / ".stamp"
    if not stamp.is_file():
        return f"model servers not installed in {stamp.parent} (bash tests/servers/setup.sh)"
    lines = stamp.read_text().splitlines()
    if not lines or lines[0] != f"src={plugin._source_hash()}":
        return "model servers are out of date with tests/servers/ (bash tests/servers/setup.sh)"
    return None


@dataclass
class Triton:
    proc: Proc
    url: str  # HTTP base URL
    grpc_address: str  # "127.0.0.1:PORT"
    metrics_url: str  # GET {metrics_url}/metrics


def start_triton(procs: Processes, cpus: Sequence[int], batched: bool = False) -> Triton | str:
    """Triton (python backend, model ``linear``; with ``batched`` also ``batched_linear`` from
    tests/models) pinned to ``cpus``; why not, if it fails."""
    from tests.models.repository import triton_repository
    from tests.servers.plugin import StartError, start_servers

    extra = [triton_repository(procs.workdir / "triton-models")] if batched else []
    try:
        handle = start_servers(["triton"], procs.workdir / "triton", tuple(extra))["triton"]
    except StartError as exc:
        return f"Triton did not start: {str(exc).splitlines()[0]}"
    pin(handle.pid, cpus)
    assert handle._proc is not None
    proc = Proc("triton", handle._proc, handle.log_path, stopper=handle.stop)
    procs.adopt(proc)
    return Triton(proc, handle.url, handle.grpc_address, handle.metrics_url)
