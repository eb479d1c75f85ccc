"""From measurements to rows: medians over rounds, ratios to the baselines, the table, JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.loadgen import LoadResult


@dataclass(frozen=True)
class Measurement:
    scenario: str
    concurrency: int
    round: int
    load: LoadResult  # what the load generator (wrk, h2load) reported, and its own CPU
    cpu_seconds: float  # of the system under test during the measured run
    # gRPC: the failures the server itself counted during the run (its metrics), and 2xx
    # answers that carried no reply message; both are errors h2load cannot see
    server_errors: int = 0
    unanswered: int = 0
    server_ok: int | None = None  # the successes the server counted (a cross-check)

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.load.requests == 0:
            return None
        return self.cpu_seconds * 1e6 / self.load.requests

    @property
    def errors(self) -> int:
        return self.load.errors + self.server_errors + self.unanswered


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def _minus(value: float | None, base: float | None) -> float | None:
    return value - base if value is not None and base is not None else None


def rows(
    measurements: list[Measurement],
    baselines: dict[str, str | None],
    forwarders: dict[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per (scenario, concurrency), in the order measured: medians over the rounds,
    errors summed; req/s relative to the scenario's forwarder (``forwarders``, default
    ``forwarder``; None: no ratio, and none to nginx-proxy either) and to nginx-proxy; at
    concurrency 1 the latency added over the scenario's baseline (``baselines``, default
    ``upstream``; None: none)."""
    forwarders = forwarders or {}
    groups: dict[tuple[str, int], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.scenario, m.concurrency), []).append(m)
    out: list[dict[str, Any]] = []
    for (scenario, concurrency), ms in groups.items():
        out.append(
            {
                "scenario": scenario,
                "concurrency": concurrency,
                "tool": ms[0].load.tool,
                "rps": _median([m.load.rps for m in ms]),
                "mean_ms": _median([m.load.mean_ms for m in ms]),
                "p50_ms": _median([m.load.p50_ms for m in ms]),
                "p99_ms": _median([m.load.p99_ms for m in ms]),
                "errors": sum(m.errors for m in ms),
                "non_2xx": sum(m.load.non_2xx for m in ms),
                "socket_errors": sum(m.load.socket_errors for m in ms),
                "server_errors": sum(m.server_errors for m in ms),
                "unanswered": sum(m.unanswered for m in ms),
                "requests": sum(m.load.requests for m in ms),
                "server_ok": _sum_or_none([m.server_ok for m in ms]),
                "cpu_us_per_request": _median([m.cpu_us_per_request for m in ms]),
                "load_cpu_us_per_request": _median([m.load.load_cpu_us_per_request for m in ms]),
                "load_utilisation": _median([m.load.utilisation for m in ms]),
                "baseline": baselines.get(scenario, "upstream"),
                "forwarder": forwarders.get(scenario, "forwarder"),
                "rounds": [
                    {
                        **asdict(m.load),
                        "cpu_seconds": m.cpu_seconds,
                        "server_errors": m.server_errors,
                        "unanswered": m.unanswered,
                        "server_ok": m.server_ok,
                        "round": m.round,
                    }
                    for m in ms
                ],
            }
        )
    by_key = {(r["scenario"], r["concurrency"]): r for r in out}
    for row in out:
        c = row["concurrency"]
        fwd = by_key.get((row["forwarder"], c)) if row["forwarder"] else None
        proxy = by_key.get(("nginx-proxy", c)) if row["forwarder"] == "forwarder" else None
        row["vs_forwarder"] = _ratio(row["rps"], fwd["rps"] if fwd else None)
        row["vs_nginx_proxy"] = _ratio(row["rps"], proxy["rps"] if proxy else None)
        base = by_key.get((row["baseline"], c)) if c == 1 and row["baseline"] else None
        for key in ("mean_ms", "p50_ms", "p99_ms"):
            added = None if base is None or base is row else _minus(row[key], base[key])
            row[f"added_{key}"] = added
    return out


def _sum_or_none(values: list[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def ratios(
    table_rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Each (scenario, against) pair measured at the same concurrency: req/s and CPU µs per
    request of both, their ratios (scenario / against) and the mean latency added."""
    by_key = {(r["scenario"], r["concurrency"]): r for r in table_rows}
    out: list[dict[str, Any]] = []
    for row in table_rows:
        for scenario, against in pairs:
            base = by_key.get((against, row["concurrency"]))
            if row["scenario"] != scenario or base is None:
                continue
            out.append(
                {
                    "scenario": scenario,
                    "against": against,
                    "concurrency": row["concurrency"],
                    "rps": row["rps"],
                    "against_rps": base["rps"],
                    "rps_ratio": _ratio(row["rps"], base["rps"]),
                    "added_mean_ms": _minus(row["mean_ms"], base["mean_ms"]),
                    "cpu_us_per_request": row["cpu_us_per_request"],
                    "against_cpu_us_per_request": base["cpu_us_per_request"],
                    "cpu_ratio": _ratio(row["cpu_us_per_request"], base["cpu_us_per_request"]),
                }
            )
    return out


_RATIO_COLUMNS = (
    ("scenario", "scenario", "<22", ""),
    ("against", "against", "<22", ""),
    ("concurrency", "conc", ">4", "d"),
    ("rps_ratio", "req/s ratio", ">11", ".2f"),
    ("added_mean_ms", "+mean ms", ">8", ".2f"),
    ("cpu_us_per_request", "CPU µs/req", ">10", ",.0f"),
    ("against_cpu_us_per_request", "against µs/req", ">14", ",.0f"),
    ("cpu_ratio", "CPU ratio", ">9", ".2f"),
)


def ratio_table(ratio_rows: list[dict[str, Any]]) -> str:
    return format_table(ratio_rows, _RATIO_COLUMNS)


RATIO_LEGEND = (
    "ratios: scenario / against at the same concurrency, of the medians. req/s ratio < 1: the\n"
    "scenario is slower; +mean ms: mean latency added; CPU ratio: CPU µs per request of the\n"
    "scenario's system under test over the other's (gateway-tensor-json against\n"
    "gateway-tensor-binary: how many times the JSON body costs the gateway what the binary one\n"
    "does; the target is at least 5)."
)


_COLUMNS = (
    ("scenario", "scenario", "<24", ""),
    ("concurrency", "conc", ">4", "d"),
    ("rps", "req/s", ">9", ",.0f"),
    ("mean_ms", "mean ms", ">7", ".2f"),
    ("p50_ms", "p50 ms", ">7", ".2f"),
    ("p99_ms", "p99 ms", ">7", ".2f"),
    ("errors", "errors", ">6", "d"),
    ("cpu_us_per_request", "CPU µs/req", ">10", ",.0f"),
    ("load_cpu_us_per_request", "load µs/req", ">11", ".0f"),
    ("load_utilisation", "load %", ">6", ".0%"),
    ("vs_forwarder", "x fwd", ">6", ".2f"),
    ("vs_nginx_proxy", "x nginx", ">7", ".2f"),
    ("added_p50_ms", "+p50 ms", ">7", ".2f"),
    ("added_p99_ms", "+p99 ms", ">7", ".2f"),
)


def table(table_rows: list[dict[str, Any]]) -> str:
    return format_table(table_rows, _COLUMNS)


def format_table(
    table_rows: list[dict[str, Any]], columns: tuple[tuple[str, str, str, str], ...]
) -> str:
    """The rows as text; ``columns`` are (key, title, alignment, format spec), a missing
    value shows as "–", and a blank line parts the concurrencies."""

    def cell(value: Any, align: str, spec: str) -> str:
        return format("–" if value is None else format(value, spec), align)

    lines = ["  ".join(format(title, align) for _, title, align, _ in columns)]
    lines.append("-" * len(lines[0]))
    previous = None
    for row in table_rows:
        if previous is not None and row["concurrency"] != previous:
            lines.append("")
        previous = row["concurrency"]
        lines.append("  ".join(cell(row[key], align, spec) for key, _, align, spec in columns))
    return "\n".join(lines)


def _round_cpu_us(r: dict[str, Any]) -> float | None:
    return float(r["cpu_seconds"]) * 1e6 / r["requests"] if r["requests"] else None


def compare(table_rows: list[dict[str, Any]], pairs: dict[str, str]) -> list[dict[str, Any]]:
    """Each scenario against its twin on the baseline gateway (``pairs``: scenario -> twin), per
    concurrency: both medians and new/base ratios of CPU µs per request and of req/s, plus the
    ratio of each round's pair (measured one right after the other): their spread is the noise
    to expect when the two gateways run the same code (their median is the paired estimate)."""
    by_key = {(r["scenario"], r["concurrency"]): r for r in table_rows}
    out: list[dict[str, Any]] = []
    for row in table_rows:
        twin_name = pairs.get(row["scenario"])
        base = by_key.get((twin_name, row["concurrency"])) if twin_name else None
        if base is None:
            continue
        base_rounds = {r["round"]: r for r in base["rounds"]}
        cpu_rounds: list[float | None] = []
        rps_rounds: list[float | None] = []
        for r in row["rounds"]:
            b = base_rounds.get(r["round"])
            cpu_rounds.append(_ratio(_round_cpu_us(r), _round_cpu_us(b)) if b else None)
            rps_rounds.append(_ratio(r["rps"], b["rps"]) if b else None)
        present = [v for v in cpu_rounds if v is not None]
        out.append(
            {
                "scenario": row["scenario"],
                "baseline_scenario": base["scenario"],
                "concurrency": row["concurrency"],
                "rps": row["rps"],
                "base_rps": base["rps"],
                "rps_ratio": _ratio(row["rps"], base["rps"]),
                "cpu_us_per_request": row["cpu_us_per_request"],
                "base_cpu_us_per_request": base["cpu_us_per_request"],
                "cpu_ratio": _ratio(row["cpu_us_per_request"], base["cpu_us_per_request"]),
                "cpu_ratio_median": _median(cpu_rounds),
                "cpu_ratio_min": min(present) if present else None,
                "cpu_ratio_max": max(present) if present else None,
                "cpu_ratio_rounds": cpu_rounds,
                "rps_ratio_rounds": rps_rounds,
                "errors": row["errors"] + base["errors"],
            }
        )
    return out


_COMPARE_COLUMNS = (
    ("scenario", "scenario", "<24", ""),
    ("concurrency", "conc", ">4", "d"),
    ("rps", "req/s", ">9", ",.0f"),
    ("base_rps", "base req/s", ">10", ",.0f"),
    ("rps_ratio", "req/s new/base", ">14", ".3f"),
    ("cpu_us_per_request", "CPU µs/req", ">10", ".0f"),
    ("base_cpu_us_per_request", "base µs/req", ">11", ".0f"),
    ("cpu_ratio", "CPU new/base", ">12", ".3f"),
    ("cpu_ratio_median", "pairs median", ">12", ".3f"),
    ("cpu_ratio_min", "min", ">5", ".3f"),
    ("cpu_ratio_max", "max", ">5", ".3f"),
)


def compare_table(comparison: list[dict[str, Any]]) -> str:
    """The extra table "against the baseline gateway"."""
    return format_table(comparison, _COMPARE_COLUMNS)


COMPARE_LEGEND = (
    "against the baseline gateway: each gateway scenario and its twin <name>@base on the\n"
    "baseline gateway (--baseline-gateway), measured one right after the other in every round.\n"
    "new/base: ratio of the medians (CPU < 1.000: the gateway under test spends less CPU per\n"
    "request); pairs median, min, max: of the CPU ratios of each round's pair."
)


LEGEND = (
    "req/s, latencies and CPU: medians over the rounds; errors: non-2xx + socket errors (and for\n"
    "gRPC the failures the server counted + answers without a reply message), summed. h2load\n"
    '(the *-grpc rows) reports min/max/mean/sd of request times, no percentiles: p50, p99 "–".\n'
    "CPU µs/req: utime+stime of the system under test (with its child processes) during the\n"
    "measured run / requests completed. load µs/req, load %: the load generator's own CPU per\n"
    "request and its CPU time over its run's wall time (100%: its one thread never idle).\n"
    "x fwd, x nginx: req/s relative to forwarder and nginx-proxy at the same concurrency\n"
    "(gateway-tensor-json: to forwarder-tensor, the same body; none for the gRPC rows and\n"
    "gateway-tensor-binary). +p50, +p99 (concurrency 1): latency added over upstream (over\n"
    "triton for gateway-triton, forwarder-tensor for gateway-tensor-json; the gRPC rows: see\n"
    "+mean ms in the ratios below)."
)
