"""The server under the app (issue 14): the same forwarding work under uvicorn (with Starlette,
as a bare ASGI app, through the gateway's one-write protocol), under a raw asyncio protocol and
under granian (RSGI and ASGI), in front of the same upstream nginx, interleaved, in one run.

    .venv/bin/python -m bench.servers [--seconds 5] [--warmup 1] [--rounds 3]
        [--concurrency 1,16,64] [--variants uvicorn-starlette,raw-protocol,...]

Every server runs on the first core, wrk and the upstream nginx on the others. For each
concurrency, for each round, every variant in turn: a warm-up, then a measured wrk run with the
CPU time of the server's process tree (granian's worker process and its Rust threads included)
read from /proc before and after. Medians over the rounds, ratios to ``uvicorn-starlette``.
Prints a table and writes bench/results/<UTC>-servers.json. granian is installed the first time
in its own venv, bench/.peers/granian-venv (``GRANIAN_VERSION``); if that fails, its rows are
skipped with the reason. See bench/README.md, "The server under the app".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import httpx

from bench import report, systems, wrk
from bench.curves.common import Cores, cores
from bench.procs import (
    BenchError,
    Proc,
    Processes,
    clean_env,
    cpu_list,
    cpu_seconds,
    free_port,
    port_open,
    processes,
    stop_on_signals,
    wait_until,
)
from bench.run import RESULTS, ensure_tools, host
from bench.servers_apps.upstream import UPSTREAM_ENV
from bench.venvs import ToolVenv

Variant = Literal[
    "uvicorn-starlette",
    "uvicorn-asgi",
    "uvicorn-gateway",
    "raw-protocol",
    "raw-h1",
    "granian-rsgi",
    "granian-asgi",
]
VARIANTS: dict[Variant, str] = {
    "uvicorn-starlette": "bench/forwarder.py: Starlette's router and Request/Response, uvicorn "
    "(httptools, uvloop)",
    "uvicorn-asgi": "bench/servers_apps/asgi.py, a bare ASGI app, under uvicorn's httptools "
    "protocol: two send messages",
    "uvicorn-gateway": "the same app under gateway.edge.server:GatewayProtocol, as gateway "
    "serve runs it: uvicorn's parser with the gateway's limits on the request head",
    "raw-protocol": "bench/servers_apps/raw.py: asyncio.Protocol + httptools' parser on uvloop, "
    "no ASGI: the floor of a Python server",
    "raw-h1": "the same raw server with the gateway's own HTTP/1.1 client (gateway.backends.h1) "
    "instead of aiohttp: the floor of a Python forwarder built from the gateway's parts",
    "granian-rsgi": "bench/servers_apps/rsgi.py under granian's RSGI interface",
    "granian-asgi": "bench/servers_apps/asgi.py under granian's ASGI interface: two messages",
}
REFERENCE: Variant = "uvicorn-starlette"
GRANIAN_VERSION = "2.8.9"
# one worker, one Rust runtime thread, uvloop, HTTP/1.1 only (wrk's), no access log (default)
GRANIAN_OPTIONS = (
    *("--http", "1", "--loop", "uvloop", "--workers", "1", "--runtime-threads", "1"),
    *("--no-ws", "--log-level", "warning", "--host", "127.0.0.1"),
)
PATH = "/v2/models/linear/infer"


def granian_venv() -> ToolVenv:
    """granian at ``GRANIAN_VERSION`` with this venv's aiohttp and uvloop versions: the same
    upstream client and loop as the other variants."""
    same = tuple(f"{name}=={metadata.version(name)}" for name in ("aiohttp", "uvloop"))
    return ToolVenv("granian-venv", (f"granian=={GRANIAN_VERSION}", *same))


def command(name: Variant, port: int, upstream: str, granian: Path | None) -> list[str]:
    """How the variant's server is started (the upstream is also in its environment)."""
    python = [sys.executable, "-m"]
    if name == "uvicorn-starlette":
        return [*python, "bench.forwarder", "--upstream", upstream, "--port", str(port)]
    if name in ("uvicorn-asgi", "uvicorn-gateway"):
        protocol = "httptools" if name == "uvicorn-asgi" else "gateway"
        serve = "bench.servers_apps.serve_uvicorn"
        return [*python, serve, "--protocol", protocol, "--port", str(port)]
    if name in ("raw-protocol", "raw-h1"):
        client = "h1" if name == "raw-h1" else "aiohttp"
        return [*python, "bench.servers_apps.raw", "--port", str(port), "--client", client]
    if granian is None:
        raise BenchError(f"{name} needs granian")
    interface = "rsgi" if name == "granian-rsgi" else "asgi"
    target = f"bench.servers_apps.{interface}:app"
    return [str(granian), "--interface", interface, *GRANIAN_OPTIONS, "--port", str(port), target]


def start(
    procs: Processes, cmd: list[str], name: str, cpus: Sequence[int], upstream: str
) -> tuple[Proc, str]:
    """Start one server pinned to ``cpus``; once one request has been answered with the
    upstream's very reply, it and its URL."""
    port = int(cmd[cmd.index("--port") + 1])
    env = clean_env(**{UPSTREAM_ENV: upstream, "PYTHONPATH": str(systems.ROOT)})
    env.pop("VIRTUAL_ENV", None)
    proc = procs.spawn(name, cmd, cpus, env=env, cwd=systems.ROOT)
    wait_until(f"{name} on port {port}", port_open(port), proc, timeout=60)
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        reply = httpx.post(url, content=wrk.BODY, headers={"content-type": "application/json"})
    except httpx.HTTPError as exc:
        raise BenchError(f"{name}: {exc!r}:\n{proc.log_tail()}") from exc
    if reply.status_code != 200 or reply.text != systems.REPLY:
        problem = f"{name} answered {reply.status_code} {reply.text[:200]!r}"
        raise BenchError(f"{problem}, not the upstream's reply:\n{proc.log_tail()}")
    return proc, url


def measure(
    name: str,
    proc: Proc,
    url: str,
    script: Path,
    concurrency: int,
    round_: int,
    args: argparse.Namespace,
) -> report.Measurement:
    """A warm-up, then the measured wrk run with the server's CPU read before and after."""
    if args.warmup > 0:
        wrk.run(url, concurrency, args.warmup, script, args.load_cpus)
    before = cpu_seconds([proc.pid])
    result = wrk.run(url, concurrency, args.seconds, script, args.load_cpus)
    used = cpu_seconds([proc.pid]) - before
    if not proc.alive():
        raise BenchError(f"{name} died:\n{proc.log_tail()}")
    m = report.Measurement(name, concurrency, round_, result, used)
    print(
        f"  c={concurrency:<3} round {round_} {name:18s} {result.rps:8.0f} req/s"
        f"  p50 {result.p50_ms or 0:6.2f} ms  p99 {result.p99_ms or 0:6.2f} ms"
        f"  errors {m.errors}  cpu {m.cpu_us_per_request or 0:5.0f} µs/req",
        file=sys.stderr,
        flush=True,
    )
    return m


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    nginx = ensure_tools(redis=False)["nginx"]
    skipped: dict[str, str] = {}
    granian: Path | None = None
    venv = granian_venv()
    if any(name.startswith("granian-") for name in args.variants):
        found = venv.executable("granian")
        if isinstance(found, str):
            skipped = {n: found for n in args.variants if n.startswith("granian-")}
        else:
            granian = found
    _, upstream = systems.start_upstream(procs, nginx, args.load_cpus)
    script = procs.workdir / "post.lua"
    script.write_text(wrk.lua_script({}, unique=False))
    servers: dict[Variant, tuple[Proc, str]] = {}
    commands: dict[Variant, list[str]] = {}
    for name in args.variants:
        if name in skipped:
            continue
        commands[name] = command(name, free_port(), upstream, granian)
        try:
            servers[name] = start(procs, commands[name], name, args.cpus, upstream)
        except BenchError as exc:
            if not name.startswith("granian-"):
                raise
            skipped[name] = f"did not start: {str(exc)[-600:]}"
    for name, why in skipped.items():
        print(f"servers: {name} skipped: {why}", file=sys.stderr, flush=True)
    measured = [
        measure(name, proc, url, script, concurrency, round_, args)
        for concurrency in args.concurrency
        for round_ in range(1, args.rounds + 1)
        for name, (proc, url) in servers.items()
    ]
    reference = REFERENCE if REFERENCE in servers else None
    rows = report.rows(measured, dict.fromkeys(servers), dict.fromkeys(servers, reference))
    by_key = {(r["scenario"], r["concurrency"]): r for r in rows}
    for row in rows:
        base = by_key.get((reference, row["concurrency"]))
        cpu, base_cpu = row["cpu_us_per_request"], base and base["cpu_us_per_request"]
        row["cpu_vs_reference"] = cpu / base_cpu if cpu is not None and base_cpu else None
    versions = {n: metadata.version(n) for n in ("uvicorn", "starlette", "aiohttp", "httptools")}
    versions |= {"uvloop": metadata.version("uvloop")}
    if granian is not None:
        versions["granian"] = venv.version("granian") or "unknown"
    return {
        "rows": rows,
        "skipped": skipped,
        "variants": {n: {"about": VARIANTS[n], "command": c} for n, c in commands.items()},
        "versions": versions,
    }


_COLUMNS = (
    ("scenario", "variant", "<17", ""),
    ("concurrency", "conc", ">4", "d"),
    ("rps", "req/s", ">8", ",.0f"),
    ("mean_ms", "mean ms", ">7", ".2f"),
    ("p50_ms", "p50 ms", ">7", ".2f"),
    ("p99_ms", "p99 ms", ">7", ".2f"),
    ("errors", "errors", ">6", "d"),
    ("cpu_us_per_request", "CPU µs/req", ">10", ",.0f"),
    ("vs_forwarder", "x req/s", ">7", ".2f"),
    ("cpu_vs_reference", "x CPU", ">5", ".2f"),
    ("load_utilisation", "wrk %", ">5", ".0%"),
)
LEGEND = (
    "req/s, latencies and CPU: medians over the rounds; errors: non-2xx + socket errors, summed.\n"
    "CPU µs/req: utime+stime of the server's process tree (threads and worker processes\n"
    "included) during the measured run / requests completed. x req/s, x CPU: over\n"
    f"{REFERENCE} at the same concurrency. wrk %: wrk's CPU time over its run's wall time."
)


def _variants(text: str) -> list[Variant]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    return [v for v in VARIANTS if v in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.servers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--seconds", type=float, default=5.0, help="measured wrk run per variant (5)")
    add("--warmup", type=float, default=1.0, help="wrk warm-up before each measurement (1)")
    add("--rounds", type=int, default=3, help="rounds per concurrency; medians reported (3)")
    add("--concurrency", type=lambda t: [int(c) for c in t.split(",")], default=[1, 16, 64])
    add("--variants", type=_variants, default=list(VARIANTS), help="a,b,... (all)")
    add("--json", type=Path, help="where the results go (bench/results/<UTC>-servers.json)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1 or min(args.concurrency) < 1:
        parser.error("--seconds > 0, --warmup >= 0, --rounds >= 1, --concurrency >= 1")
    where: Cores = cores()
    args.cpus, args.load_cpus = where.sut, where.load
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    stop_on_signals()
    stamp = dt.datetime.now(dt.UTC)
    pinning = (
        f"pinning: servers on core {cpu_list(args.cpus)}, wrk and the upstream nginx on core "
        f"{cpu_list(args.load_cpus)}"
    )
    print(pinning, file=sys.stderr, flush=True)
    try:
        with processes("servers") as procs:
            result = bench(args, procs)
    except BenchError as exc:
        print(f"servers: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("servers: interrupted", file=sys.stderr)
        return 130
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "started_utc": stamp.isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, "-m", "bench.servers", *argv],
        "options": options,
        "pinning": pinning,
        "host": host(),
        "legend": LEGEND,
        **result,
    }
    path = args.json or RESULTS / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-servers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(pinning)
    print(
        f"wrk -t1, {args.seconds:g} s per run after {args.warmup:g} s warm-up, "
        f"{args.rounds} round(s)"
    )
    print(report.format_table(result["rows"], _COLUMNS))
    print(LEGEND)
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
