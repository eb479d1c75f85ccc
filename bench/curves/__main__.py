"""Cost curves (bench/README.md, "Cost as work grows"):

    .venv/bin/python -m bench.curves payload [--seconds 5] [--concurrency 16]
    .venv/bin/python -m bench.curves routes [--models 10,1000,10000,100000] [--health-interval 5s]
    .venv/bin/python -m bench.curves keys [--keys 10,10000,1000000] [--cache-size 100000]
    .venv/bin/python -m bench.curves soak [--minutes 30] [--interval 60]

Each prints a table and writes bench/results/<UTC>-curve-<name>.json (or --json PATH). Every
process it starts (nginx, redis, gateways) is on loopback and stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.curves import common, keys, payload, routes, soak
from bench.procs import BenchError, processes, stop_on_signals


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(p.replace("_", "")) for p in text.split(",") if p.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.curves",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", type=Path, help="where the results go")
    sub = parser.add_subparsers(dest="curve", required=True)
    for name in ("payload", "routes"):
        p = sub.add_parser(name)
        p.add_argument("--seconds", type=float, default=5.0, help="measured wrk run (5)")
        p.add_argument("--warmup", type=float, default=1.0, help="warm-up before it (1)")
        p.add_argument("--concurrency", type=int, default=16, help="wrk connections (16)")
    sub.choices["payload"].add_argument(
        "--sizes", type=_ints, default=payload.SIZES, help="body bytes (1024,102400,1048576)"
    )
    r = sub.choices["routes"]
    r.add_argument(
        "--models", type=_ints, default=routes.COUNTS, help="models (10,1000,10000,100000)"
    )
    r.add_argument(
        "--health-interval",
        default=routes.HEALTH_INTERVAL,
        help=f"the backend's health interval in routes.yaml ({routes.HEALTH_INTERVAL})",
    )
    r.add_argument(
        "--probe-seconds",
        type=float,
        default=routes.PROBE_SECONDS,
        help=f"idle window after ready to count probes in ({routes.PROBE_SECONDS:g})",
    )
    r.add_argument(
        "--runtime",
        action="store_true",
        help="run the gateway installed as deployed (requirements/runtime.txt, then this tree) "
        "in bench/.peers/runtime-venv, not this venv",
    )
    k = sub.add_parser("keys")
    k.add_argument("--keys", type=_ints, default=keys.COUNTS, help="keys (10,10000,1000000)")
    k.add_argument("--cache-size", type=int, default=100_000, help="the verifier's LRU (100000)")
    k.add_argument("--sample", type=int, default=2_000, help="keys verified per measure (2000)")
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=30.0, help="how long (30)")
    s.add_argument("--interval", type=float, default=60.0, help="seconds per sample (60)")
    s.add_argument("--concurrency", type=int, default=16, help="wrk connections (16)")
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    stop_on_signals()
    where = common.cores()
    print(f"curves: gateway on core {where.sut}, load on core {where.load}", file=sys.stderr)
    data: dict[str, Any]
    try:
        with processes() as procs:
            if args.curve == "payload":
                data = payload.run(
                    procs, where, args.concurrency, args.seconds, args.warmup, args.sizes
                )
                text = payload.render(data)
            elif args.curve == "routes":
                data = routes.run(
                    procs,
                    where,
                    args.concurrency,
                    args.seconds,
                    args.warmup,
                    args.models,
                    args.health_interval,
                    args.probe_seconds,
                    args.runtime,
                )
                text = routes.render(data)
            elif args.curve == "keys":
                data = keys.run(procs, where, args.keys, args.cache_size, args.sample)
                text = keys.render(data)
            else:
                data = soak.run(procs, where, args.minutes, args.interval, args.concurrency)
                text = soak.render(data)
    except BenchError as exc:
        print(f"curves: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("curves: interrupted", file=sys.stderr)
        return 130
    path = common.save(args.curve, argv, data, args.json)
    print(text)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
