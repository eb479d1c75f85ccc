"""From measurements to rows: medians over rounds, ratios to the baselines, the table, JSON."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from bench.wrk import WrkResult


@dataclass(frozen=True)
class Measurement:
    scenario: str
    concurrency: int
    round: int
    wrk: WrkResult
    cpu_seconds: float  # of the system under test during the measured wrk run

    @property
    def cpu_us_per_request(self) -> float | None:
        if self.wrk.requests == 0:
            return None
        return self.cpu_seconds * 1e6 / self.wrk.requests


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def _minus(value: float | None, base: float | None) -> float | None:
    return value - base if value is not None and base is not None else None


def rows(measurements: list[Measurement], baselines: dict[str, str]) -> list[dict[str, Any]]:
    """One row per (scenario, concurrency), in the order measured: medians over the rounds,
    errors summed; req/s relative to forwarder and nginx-proxy; at concurrency 1 the latency
    added over the scenario's baseline (``upstream``, or ``triton`` for ``gateway-triton``)."""
    groups: dict[tuple[str, int], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.scenario, m.concurrency), []).append(m)
    out: list[dict[str, Any]] = []
    for (scenario, concurrency), ms in groups.items():
        out.append(
            {
                "scenario": scenario,
                "concurrency": concurrency,
                "rps": _median([m.wrk.rps for m in ms]),
                "p50_ms": _median([m.wrk.p50_ms for m in ms]),
                "p99_ms": _median([m.wrk.p99_ms for m in ms]),
                "errors": sum(m.wrk.errors for m in ms),
                "non_2xx": sum(m.wrk.non_2xx for m in ms),
                "socket_errors": sum(m.wrk.socket_errors for m in ms),
                "requests": sum(m.wrk.requests for m in ms),
                "cpu_us_per_request": _median([m.cpu_us_per_request for m in ms]),
                "baseline": baselines.get(scenario, "upstream"),
                "rounds": [
                    {**asdict(m.wrk), "cpu_seconds": m.cpu_seconds, "round": m.round} for m in ms
                ],
            }
        )
    by_key = {(r["scenario"], r["concurrency"]): r for r in out}
    for row in out:
        c = row["concurrency"]
        fwd, proxy = by_key.get(("forwarder", c)), by_key.get(("nginx-proxy", c))
        row["vs_forwarder"] = _ratio(row["rps"], fwd["rps"] if fwd else None)
        row["vs_nginx_proxy"] = _ratio(row["rps"], proxy["rps"] if proxy else None)
        base = by_key.get((row["baseline"], c)) if c == 1 else None
        for key in ("p50_ms", "p99_ms"):
            added = None if base is None or base is row else _minus(row[key], base[key])
            row[f"added_{key}"] = added
    return out


_COLUMNS = (
    ("scenario", "scenario", "<24", ""),
    ("concurrency", "conc", ">4", "d"),
    ("rps", "req/s", ">9", ",.0f"),
    ("p50_ms", "p50 ms", ">7", ".2f"),
    ("p99_ms", "p99 ms", ">7", ".2f"),
    ("errors", "errors", ">6", "d"),
    ("cpu_us_per_request", "CPU µs/req", ">10", ".0f"),
    ("vs_forwarder", "x fwd", ">6", ".2f"),
    ("vs_nginx_proxy", "x nginx", ">7", ".2f"),
    ("added_p50_ms", "+p50 ms", ">7", ".2f"),
    ("added_p99_ms", "+p99 ms", ">7", ".2f"),
)


def table(table_rows: list[dict[str, Any]]) -> str:
    return _format(table_rows, _COLUMNS)


def _format(
    table_rows: list[dict[str, Any]], columns: tuple[tuple[str, str, str, str], ...]
) -> str:
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
    return _format(comparison, _COMPARE_COLUMNS)


COMPARE_LEGEND = (
    "against the baseline gateway: each gateway scenario and its twin <name>@base on the\n"
    "baseline gateway (--baseline-gateway), measured one right after the other in every round.\n"
    "new/base: ratio of the medians (CPU < 1.000: the gateway under test spends less CPU per\n"
    "request); pairs median, min, max: of the CPU ratios of each round's pair."
)


LEGEND = (
    "req/s, p50, p99 and CPU: medians over the rounds; errors: non-2xx + socket errors, summed.\n"
    "CPU µs/req: utime+stime of the system under test (with its child processes) during the\n"
    "measured run / requests completed. x fwd, x nginx: req/s relative to forwarder and\n"
    "nginx-proxy at the same concurrency. +p50, +p99 (concurrency 1): latency added over\n"
    "upstream (over triton for gateway-triton)."
)
