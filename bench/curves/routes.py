"""What the route table's size costs: 10, 1,000, 10,000 and 100,000 models in routes.yaml. For
each: ``gateway check``'s time, ``serve`` start until ``/readyz`` answers ready, the readiness
probes the model server received per second (while starting, then over an idle window), the
RSS, the p50 and CPU per request of the first and the last model, and a one-line change (a
model renamed) from the file write until the new name answers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench import systems, venvs
from bench.curves import probes
from bench.curves.common import Cores, measure, table
from bench.procs import (
    BenchError,
    Proc,
    Processes,
    clean_env,
    free_port,
    rss_kib,
    stop,
    wait_until,
)
from bench.wrk import BODY, lua_script

COUNTS = (10, 1_000, 10_000, 100_000)
HEALTH_INTERVAL = "5s"  # the gateway's default: what a new user's routes.yaml gets
PROBE_SECONDS = 10.0  # the idle window after ready in which the probes are counted
RELOAD_WAIT = 600.0  # seconds a reload may take before the curve gives up


def model_name(i: int) -> str:
    return f"m{i:05d}"


def routes_yaml(
    upstream: str, count: int, renamed: int | None = None, health: str = HEALTH_INTERVAL
) -> str:
    """``count`` models on one kserve backend, one per line, each its own model on the server
    (``m00000`` version 1...), health checked every ``health``; ``renamed``: that model is
    called ``r<number>`` instead (the one-line change; its server model stays)."""
    lines = [
        "backends:",
        f'  up: {{kind: kserve, urls: ["{upstream}"], timeout: 10s, '
        f"health: {{interval: {health}}}}}",
        "models:",
    ]
    for i in range(count):
        native = model_name(i)
        name = native if i != renamed else "r" + native[1:]
        lines.append(
            f'  {name}: {{versions: {{"1": {{backend: up, name: {native}, version: "1"}}}}}}'
        )
    return "\n".join(lines) + "\n"


def _check_seconds(gateway: str, path: Path) -> float:
    start = time.monotonic()
    done = subprocess.run(
        [gateway, "check", str(path)], capture_output=True, text=True,
        env=clean_env(), cwd=systems.ROOT, check=False,
    )  # fmt: skip
    took = time.monotonic() - start
    if done.returncode != 0:
        raise BenchError(f"gateway check {path}: {done.stderr or done.stdout}")
    return took


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        reply = client.post(url, content=BODY, headers={"Content-Type": "application/json"})
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def _serve(
    procs: Processes, gateway: str, name: str, path: Path, cpus: list[int]
) -> tuple[Proc, str, float, float]:
    """``gateway serve`` (watching the file): the process, its URL, when it was spawned and
    when /readyz first said ready (unix seconds, to match the model server's probe log)."""
    port = free_port()
    cmd = [gateway, "serve", "--config", str(path), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning"]
    start = time.time()
    proc = procs.spawn(name, cmd, cpus, env=clean_env(), cwd=systems.ROOT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return bool(httpx.get(f"{url}/readyz", timeout=5).json().get("status") == "ready")
        except (httpx.HTTPError, ValueError):
            return False

    wait_until(f"{name} ready", ready, proc, timeout=600)
    return proc, url, start, time.time()


def run(
    procs: Processes,
    where: Cores,
    concurrency: int,
    seconds: float,
    warmup: float,
    counts: tuple[int, ...] = COUNTS,
    health: str = HEALTH_INTERVAL,
    probe_seconds: float = PROBE_SECONDS,
    runtime: bool = False,
) -> dict[str, Any]:
    """``runtime``: the gateway installed as deployed (``venvs.runtime_gateway``), not this
    venv's (whose test-only packages some libraries import when present: a few MiB of RSS)."""
    gateway = systems.GATEWAY
    if runtime:
        installed = venvs.runtime_gateway(systems.ROOT)
        if isinstance(installed, str):
            raise BenchError(installed)
        gateway = str(installed)
    server = probes.start(procs, where.load)  # one replica: its probes are per replica
    upstream = server.url
    script = procs.workdir / "routes.lua"
    script.write_text(lua_script({}, False))
    rows: list[dict[str, Any]] = []
    for count in counts:
        path = procs.workdir / f"routes-{count}.yaml"
        path.write_text(routes_yaml(upstream, count, health=health))
        server.serve([model_name(i) for i in range(count)])
        row: dict[str, Any] = {"models": count, "file_bytes": path.stat().st_size}
        row["check_s"] = round(_check_seconds(gateway, path), 3)
        name = f"gateway-routes-{count}"
        proc, url, spawned, ready = _serve(procs, gateway, name, path, where.sut)
        row["ready_s"] = round(ready - spawned, 3)
        row["rss_kib"] = rss_kib([proc.pid])
        # the one replica's probes: while starting, then idle (no request but the probes)
        row["probes_start_per_s"] = round(server.per_second(spawned, ready), 1)
        time.sleep(probe_seconds)
        row["probes_per_s"] = round(server.per_second(ready, ready + probe_seconds), 1)
        for which, i in (("first", 0), ("last", count - 1)):
            m = measure(
                f"{url}/v2/models/{model_name(i)}/infer", script, proc, concurrency, seconds,
                warmup, where.load,
            )  # fmt: skip
            row[f"{which}_p50_ms"] = m.result.p50_ms
            row[f"{which}_cpu_us"] = round(m.cpu_us_per_request, 1)
            row[f"{which}_rps"] = m.result.rps
        row["reload_s"] = round(_reload(path, upstream, count, url, health), 3)
        row["rss_after_kib"] = rss_kib([proc.pid])
        stop(proc)
        procs.started.remove(proc)
        rows.append(row)
        print(f"  {row}", flush=True)
    return {
        "curve": "routes",
        "concurrency": concurrency,
        "seconds": seconds,
        "health_interval": health,
        "probe_seconds": probe_seconds,
        "replicas": 1,
        "gateway": "runtime" if runtime else "dev",
        "rows": rows,
    }


def _reload(path: Path, upstream: str, count: int, url: str, health: str) -> float:
    """Rename the last model (one line) and time from the write until the new name answers."""
    last = count - 1
    new_url = f"{url}/v2/models/r{model_name(last)[1:]}/infer"
    text = routes_yaml(upstream, count, renamed=last, health=health)
    with httpx.Client(timeout=5) as client:
        if _answers(client, new_url):
            raise BenchError(f"{new_url} answers before the change")
        start = time.monotonic()
        path.write_text(text)
        deadline = start + RELOAD_WAIT
        while not _answers(client, new_url):
            if time.monotonic() > deadline:
                raise BenchError(f"{new_url} did not answer {RELOAD_WAIT:g} s after the change")
            time.sleep(0.01)
        return time.monotonic() - start


def render(data: dict[str, Any]) -> str:
    headers = [
        "models", "check s", "start→ready s", "reload s", "RSS MiB", "probes/s starting",
        "probes/s idle", "first p50 ms", "first µs/req", "last p50 ms", "last µs/req",
    ]  # fmt: skip
    rows = [
        [r["models"], r["check_s"], r["ready_s"], r["reload_s"], round(r["rss_kib"] / 1024, 1),
         r["probes_start_per_s"], r["probes_per_s"], r["first_p50_ms"], r["first_cpu_us"],
         r["last_p50_ms"], r["last_cpu_us"]]
        for r in data["rows"]
    ]  # fmt: skip
    return table(headers, rows)
