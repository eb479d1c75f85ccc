"""The full chain (API key, Redis rate limit, cache miss: ``gateway-full``) for a long run,
back-to-back wrk runs of ``interval`` seconds each: after each, the gateway's RSS and that
minute's p99. Flat: the RSS at the end within 5 % (and 16 MiB) of the first sample's, and no
minute's p99 past 2x the median p99."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import scenarios, wrk
from bench.curves.common import NGINX, Cores, table
from bench.procs import BenchError, Processes, cpu_seconds, rss_kib

RSS_GROWTH = 0.05
RSS_SLACK_KIB = 16 * 1024
P99_SPREAD = 2.0


def run(
    procs: Processes, where: Cores, minutes: float, interval: float, concurrency: int
) -> dict[str, Any]:
    setup = scenarios.start(["gateway-full"], procs, NGINX, where.sut, where.load, 1)
    s = setup.scenarios[0]
    wrk.run(s.url, concurrency, 5, s.script(procs.workdir), where.load)  # warm-up
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    end = start + minutes * 60
    while time.monotonic() < end:
        seconds = min(interval, max(1.0, end - time.monotonic()))
        before = cpu_seconds([s.sut.pid])
        result = wrk.run(s.url, concurrency, seconds, s.script(procs.workdir), where.load)
        used = cpu_seconds([s.sut.pid]) - before
        if not s.sut.alive():
            raise BenchError(f"the gateway died during the soak:\n{s.sut.log_tail()}")
        sample = {
            "t_s": round(time.monotonic() - start, 1),
            "rss_kib": rss_kib([s.sut.pid]),
            "rps": result.rps,
            "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms,
            "errors": result.errors,
            "cpu_us_per_request": round(used * 1e6 / max(1, result.requests), 1),
        }
        samples.append(sample)
        print(f"  soak {sample}", flush=True)
    return {"curve": "soak", "minutes": minutes, "interval_s": interval,
            "concurrency": concurrency, "samples": samples, **verdict(samples)}  # fmt: skip


def verdict(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether RSS and p99 stayed flat over the samples (see the module's doc)."""
    first, last = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    growth = last - first
    rss_flat = growth <= max(RSS_GROWTH * first, RSS_SLACK_KIB)
    p99s = [x["p99_ms"] for x in samples if x["p99_ms"] is not None]
    median = statistics.median(p99s) if p99s else 0.0
    p99_flat = bool(p99s) and max(p99s) <= P99_SPREAD * median
    return {
        "rss_first_kib": first,
        "rss_last_kib": last,
        "rss_growth_kib": growth,
        "rss_flat": rss_flat,
        "p99_median_ms": median,
        "p99_max_ms": max(p99s) if p99s else None,
        "p99_flat": p99_flat,
        "errors": sum(x["errors"] for x in samples),
    }


def render(data: dict[str, Any]) -> str:
    headers = ["t s", "RSS KiB", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "errors"]
    rows = [
        [x["t_s"], x["rss_kib"], x["rps"], x["p50_ms"], x["p99_ms"], x["cpu_us_per_request"],
         x["errors"]]
        for x in data["samples"]
    ]  # fmt: skip
    flat = (
        f"RSS {data['rss_first_kib']:,} -> {data['rss_last_kib']:,} KiB "
        f"({'flat' if data['rss_flat'] else 'NOT flat'}); p99 median "
        f"{data['p99_median_ms']:.2f} ms, max {data['p99_max_ms']:.2f} ms "
        f"({'flat' if data['p99_flat'] else 'NOT flat'}); errors {data['errors']}"
    )
    return table(headers, rows) + "\n" + flat
