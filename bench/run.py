"""The benchmark harness: every scenario side by side, interleaved, in one run.

    .venv/bin/python -m bench.run [--seconds 10] [--concurrency 1,16,64] [--rounds 1]
    .venv/bin/python -m bench.run --soak 600        # memory over a long gateway-full run

For each concurrency, for each round, every scenario in turn: a warm-up, then a measured run of
its load generator (wrk; h2load for gRPC) with the CPU time of the system under test read from
/proc before and after, and the generator's own from its rusage. Prints a table and writes
bench/results/<UTC timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import report, scenarios, systems, wrk
from bench.procs import (
    BenchError,
    Processes,
    cpu_list,
    cpu_seconds,
    find_tool,
    processes,
    rss_kib,
    stop_on_signals,
)

RESULTS = Path(__file__).resolve().parent / "results"
# tool -> its Debian package; h2load only when a gRPC scenario is chosen
PACKAGES = {
    "wrk": "wrk",
    "nginx": "nginx-light",
    "h2load": "nghttp2-client",
    "haproxy": "haproxy",
}
SBIN = {"nginx": "/usr/sbin/nginx", "haproxy": "/usr/sbin/haproxy"}


def _cpus(text: str) -> list[int]:
    """``0``, ``0,2`` or ``0-3``."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        out += range(int(low), int(high or low) + 1)
    if not out:
        raise argparse.ArgumentTypeError(f"no cores in {text!r}")
    return sorted(set(out))


def _ints(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def _names(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in scenarios.SCENARIOS]
    if unknown or not names:
        known = ", ".join(scenarios.SCENARIOS)
        raise argparse.ArgumentTypeError(f"unknown scenario(s) {unknown}; known: {known}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    add = parser.add_argument
    add("--seconds", type=float, default=10.0, help="measured wrk run per scenario (default 10)")
    add("--warmup", type=float, default=2.0, help="wrk warm-up before each measurement (2)")
    add("--rounds", type=int, default=1, help="rounds per concurrency; medians reported (1)")
    add("--concurrency", type=_ints, default=[1, 16, 64], help="connections (1,16,64)")
    add("--scenarios", type=_names, default=list(scenarios.SCENARIOS), help="a,b,... (all)")
    add("--workers", type=int, default=1, help="gateway worker processes (1)")
    add("--cpus", type=_cpus, help="cores of the systems under test (0: the first core)")
    add("--load-cpus", type=_cpus, help="cores of wrk, upstream, redis, triton (the others)")
    add("--json", type=Path, help="where to write the results (bench/results/<UTC>.json)")
    add("--soak", type=float, metavar="SECONDS", help="soak mode: gateway-full at c=16")
    add("--soak-interval", type=float, default=30.0, help="RSS sample interval in soak (30)")
    add(
        "--baseline-gateway",
        metavar="PATH",
        help="the gateway executable of another installation (an older commit's venv): its "
        "gateways run too, and every gateway scenario gets a twin <name>@base right after it",
    )
    args = parser.parse_args(argv)
    if args.cpus is None:
        args.cpus = [min(os.sched_getaffinity(0))]
    if args.load_cpus is None:
        rest = sorted(os.sched_getaffinity(0) - set(args.cpus))
        args.load_cpus = rest or list(args.cpus)
    if args.seconds <= 0 or args.warmup < 0 or args.rounds < 1 or args.workers < 1:
        parser.error("--seconds > 0, --warmup >= 0, --rounds >= 1, --workers >= 1")
    if args.baseline_gateway is not None:
        args.baseline_gateway = _executable(parser, args.baseline_gateway)
        if args.soak is not None:
            parser.error("--baseline-gateway does not apply to --soak")
        if not set(args.scenarios) & scenarios.GATEWAYS:
            parser.error("--baseline-gateway needs at least one gateway-* scenario")
    return args


def _executable(parser: argparse.ArgumentParser, path: str) -> str:
    """An absolute path to an executable file (a venv's ``bin/gateway``)."""
    found = Path(path).expanduser().absolute()
    if not found.is_file() or not os.access(found, os.X_OK):
        parser.error(f"--baseline-gateway: {path} is not an executable file")
    return str(found)


def _find(names: list[str]) -> dict[str, str | None]:
    return {n: find_tool(n, *([SBIN[n]] if n in SBIN else [])) for n in names}


def ensure_tools(redis: bool, grpc: bool = False, haproxy: bool = False) -> dict[str, str]:
    """wrk, nginx, for gRPC h2load, for haproxy-proxy haproxy (apt-get installs them as root
    with a non-interactive apt); their paths."""
    names = ["wrk", "nginx", *(["h2load"] if grpc else []), *(["haproxy"] if haproxy else [])]
    tools = _find(names)
    missing = [PACKAGES[name] for name, path in tools.items() if path is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"bench: installing {' '.join(missing)} with apt-get", file=sys.stderr, flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        for cmd in (install, ["apt-get", "update", "-qq"], install):
            done = subprocess.run(cmd, stdin=subprocess.DEVNULL, env=env, check=False)
            if cmd is install and done.returncode == 0:
                break
        tools = _find(names)
        missing = [PACKAGES[name] for name, path in tools.items() if path is None]
    if missing:
        raise BenchError(
            f"the benchmark needs {' and '.join(missing)}: "
            f"sudo apt-get install -y {' '.join(missing)}"
        )
    for tool in ("taskset", *(["redis-server"] if redis else [])):
        if shutil.which(tool) is None:
            package = "util-linux" if tool == "taskset" else "redis-server"
            raise BenchError(f"the benchmark needs {tool}: sudo apt-get install -y {package}")
    return {name: path for name, path in tools.items() if path is not None}


def pinning(args: argparse.Namespace) -> str:
    sut, load = cpu_list(args.cpus), cpu_list(args.load_cpus)
    text = (
        f"pinning: systems under test on core {sut} (taskset -c {sut}); wrk, h2load, upstream "
        f"nginx, redis and triton on core {load} (taskset -c {load})"
    )
    if set(args.cpus) & set(args.load_cpus):
        text += "\n  WARNING: the load shares cores with the system under test"
    return text


def gateways(baseline: str | None) -> dict[str, dict[str, str | None]]:
    """The gateway executables compared and the code each one imports (for the JSON; a note
    when the baseline runs the very same files as the gateway under test)."""
    current = systems.gateway_code(systems.GATEWAY)
    out = {"current": {"executable": systems.GATEWAY, "code": current}}
    if baseline is not None:
        code = systems.gateway_code(baseline)
        out["baseline"] = {"executable": baseline, "code": code}
        if code is not None and code == current:
            print(
                f"bench: note: the baseline gateway runs the same code as the gateway under "
                f"test ({code})",
                file=sys.stderr,
                flush=True,
            )
    return out


def bench(args: argparse.Namespace, procs: Processes, tools: dict[str, str]) -> dict[str, Any]:
    compared = gateways(args.baseline_gateway)
    setup = scenarios.start(
        args.scenarios,
        procs,
        tools["nginx"],
        args.cpus,
        args.load_cpus,
        args.workers,
        args.baseline_gateway,
        tools.get("haproxy"),
    )
    for name, why in setup.skipped.items():
        print(f"bench: scenario {name} skipped: {why}", file=sys.stderr, flush=True)
    measured: list[report.Measurement] = []
    for concurrency in args.concurrency:
        for round_ in range(1, args.rounds + 1):
            for s in setup.scenarios:
                measured.append(measure(s, procs, concurrency, round_, args))
    baselines = scenarios.BASELINE | {scenarios.twin(k): v for k, v in scenarios.BASELINE.items()}
    forwarders = scenarios.FORWARDER | {
        scenarios.twin(k): v for k, v in scenarios.FORWARDER.items()
    }
    rows = report.rows(measured, baselines, forwarders)
    out: dict[str, Any] = {
        "rows": rows,
        "ratios": report.ratios(rows, scenarios.RATIOS),
        "skipped": setup.skipped,
    }
    if args.baseline_gateway is not None:
        pairs = {s.name: scenarios.twin(s.name) for s in setup.scenarios}
        out["gateways"] = compared
        out["against_baseline"] = report.compare(rows, pairs)
    return out


def measure(
    s: scenarios.Scenario,
    procs: Processes,
    concurrency: int,
    round_: int,
    args: argparse.Namespace,
) -> report.Measurement:
    """A warm-up, then the measured run with the CPU of the system under test read before and
    after (and the server's own counts of answers and failures, where it has them)."""
    if args.warmup > 0:
        s.load(procs.workdir, concurrency, args.warmup, args.load_cpus)
    counted = s.counts() if s.counts is not None else None
    before = cpu_seconds([s.sut.pid])
    result = s.load(procs.workdir, concurrency, args.seconds, args.load_cpus)
    used = cpu_seconds([s.sut.pid]) - before
    if not s.sut.alive():
        raise BenchError(f"{s.sut.name} died during {s.name}:\n{s.sut.log_tail()}")
    server_errors, server_ok = 0, None
    if s.counts is not None and counted is not None:
        now = s.counts()
        server_errors, server_ok = now.failed - counted.failed, now.ok - counted.ok
    m = report.Measurement(
        s.name, concurrency, round_, result, used, server_errors, s.unanswered(result), server_ok
    )
    problems = ""
    if m.server_errors or m.unanswered:
        problems = f" (server errors {m.server_errors}, no reply message {m.unanswered})"
    print(
        f"  c={concurrency:<3} round {round_} {s.name:24s} {result.rps:9.0f} req/s"
        f"  mean {result.mean_ms:7.2f} ms  p50 {_ms(result.p50_ms)}  p99 {_ms(result.p99_ms)}"
        f"  errors {m.errors}{problems}  cpu {m.cpu_us_per_request or 0:6.0f} µs/req"
        f"  {result.tool} {result.load_cpu_us_per_request or 0:4.0f} µs/req"
        f" {result.utilisation or 0:4.0%}",
        file=sys.stderr,
        flush=True,
    )
    return m


def _ms(value: float | None) -> str:
    return f"{value:7.2f} ms" if value is not None else "      – ms"


def soak(args: argparse.Namespace, procs: Processes, nginx: str) -> dict[str, Any]:
    setup = scenarios.start(["gateway-full"], procs, nginx, args.cpus, args.load_cpus, args.workers)
    s = setup.scenarios[0]
    if args.warmup > 0:
        wrk.run(s.url, 16, args.warmup, s.script(procs.workdir), args.load_cpus)
    samples: list[tuple[float, int]] = [(0.0, rss_kib([s.sut.pid]))]
    before = cpu_seconds([s.sut.pid])
    proc = wrk.start(s.url, 16, args.soak, s.script(procs.workdir), args.load_cpus)
    started = proc.started
    while not proc.exited():
        next_at = started + len(samples) * args.soak_interval
        proc.exited(max(0.0, min(next_at, started + args.soak) - time.monotonic()))
        if not proc.exited() and time.monotonic() >= next_at:
            samples.append((round(time.monotonic() - started, 1), rss_kib([s.sut.pid])))
            print(f"  soak t={samples[-1][0]:.0f}s rss {samples[-1][1]} KiB", file=sys.stderr)
    result = wrk.finish(proc, args.soak)
    used = cpu_seconds([s.sut.pid]) - before
    samples.append((round(time.monotonic() - started, 1), rss_kib([s.sut.pid])))
    m = report.Measurement(s.name, 16, 1, result, used)
    return {
        "soak": {
            "scenario": s.name,
            "concurrency": 16,
            "seconds": args.soak,
            "rps": result.rps,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "errors": result.errors,
            "requests": result.requests,
            "cpu_us_per_request": m.cpu_us_per_request,
            "rss_start_kib": samples[0][1],
            "rss_end_kib": samples[-1][1],
            "rss_max_kib": max(kib for _, kib in samples),
            "rss_samples": [{"t": t, "kib": kib} for t, kib in samples],
        }
    }


def host() -> dict[str, Any]:
    """The machine, for the JSON: cores, CPU model, kernel, Python."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    stamp = dt.datetime.now(dt.UTC)
    try:
        with processes("bench") as procs:
            needs_redis = args.soak is not None or bool(set(args.scenarios) & scenarios.REDIS)
            needs_h2load = args.soak is None and bool(set(args.scenarios) & scenarios.GRPC)
            needs_haproxy = args.soak is None and "haproxy-proxy" in args.scenarios
            tools = ensure_tools(needs_redis, needs_h2load, needs_haproxy)
            print(pinning(args), file=sys.stderr, flush=True)
            nginx = tools["nginx"]
            result = soak(args, procs, nginx) if args.soak else bench(args, procs, tools)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "started_utc": stamp.isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])],
        "options": options,
        "pinning": {"sut_cpus": args.cpus, "load_cpus": args.load_cpus, "text": pinning(args)},
        "host": host(),
        "legend": report.LEGEND,
        "ratio_legend": report.RATIO_LEGEND,
        **result,
    }
    path = args.json or RESULTS / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(pinning(args))
    if args.soak:
        r = result["soak"]
        print(
            f"soak: {r['scenario']} at concurrency 16 for {r['seconds']:g} s, gateway workers: "
            f"{args.workers}\n  {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 "
            f"{r['p99_ms']:.2f} ms, errors {r['errors']}, "
            f"CPU {r['cpu_us_per_request'] or 0:.0f} µs/req"
            f"\n  RSS start {r['rss_start_kib']} KiB, end {r['rss_end_kib']} KiB, max "
            f"{r['rss_max_kib']} KiB ({len(r['rss_samples'])} samples)"
        )
    else:
        print(
            f"wrk -t1 (h2load -t1 -m1 for gRPC), {args.seconds:g} s per run after "
            f"{args.warmup:g} s warm-up, {args.rounds} round(s), gateway workers: {args.workers}"
        )
        print(report.table(result["rows"]))
        print(report.LEGEND)
        if result["ratios"]:
            print()
            print(report.ratio_table(result["ratios"]))
            print(report.RATIO_LEGEND)
        if "against_baseline" in result:
            base = result["gateways"]["baseline"]
            print(f"\nagainst the baseline gateway {base['executable']}")
            print(report.compare_table(result["against_baseline"]))
            print(report.COMPARE_LEGEND)
        for name, why in result["skipped"].items():
            print(f"skipped {name}: {why}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
