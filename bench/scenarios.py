"""The scenarios: what each one measures, which process is the system under test, and a check
that each answers 200 with the headers it should before anything is measured."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import systems
from bench.procs import BenchError, Proc, Processes
from bench.wrk import BODY, INPUTS, lua_script

INFER = "/v2/models/linear/infer"

# name -> what it measures (the README's table says the same)
SCENARIOS: dict[str, str] = {
    "upstream": "nginx alone answering a fixed KServe v2 reply (the ceiling)",
    "nginx-proxy": "nginx reverse proxy (keepalive upstream) in front of the upstream",
    "forwarder": "minimal Starlette + aiohttp forwarder (the floor for our stack)",
    "gateway-passthrough": "gateway passthrough route /up/ (strip_prefix) to the upstream",
    "gateway-v2": "gateway unified v2 infer, kserve backend, no auth, limits or cache",
    "gateway-full": "API key + Redis rate limit + cache, every request a MISS",
    "gateway-jwt": "RS256 JWT + Redis rate limit + cache, every request a MISS",
    "gateway-hit": "API key + Redis rate limit + cache, every request a HIT",
    "triton": "real Triton (python backend) alone, v2 infer on linear",
    "gateway-triton": "the gateway (no auth) in front of that Triton",
}
BASELINE = {"gateway-triton": "triton"}  # added latency is over this; others: over upstream
OPEN = {"gateway-passthrough", "gateway-v2", "gateway-triton"}
FULL = {"gateway-full", "gateway-jwt", "gateway-hit"}
TRITON = {"triton", "gateway-triton"}


@dataclass
class Scenario:
    name: str
    url: str
    sut: Proc  # whose CPU is counted (with its descendants)
    headers: dict[str, str] = field(default_factory=dict)
    unique: bool = False  # a different body on every request (cache misses)
    cache: str | None = None  # the Cache-Status it must answer: "fwd=miss" or "hit"
    limited: bool = False  # must answer RateLimit headers

    @property
    def baseline(self) -> str:
        return BASELINE.get(self.name, "upstream")

    def script(self, workdir: Path) -> Path:
        """A fresh Lua script (a new nonce for unique bodies) for one wrk run."""
        path = workdir / f"{self.name}.lua"
        path.write_text(lua_script(self.headers, self.unique))
        return path


@dataclass
class Setup:
    scenarios: list[Scenario]
    skipped: dict[str, str]  # scenario -> why it did not run


def start(
    names: Sequence[str],
    procs: Processes,
    nginx: str,
    sut_cpus: Sequence[int],
    load_cpus: Sequence[int],
    workers: int,
) -> Setup:
    """Start every system the chosen scenarios need, once; they run for the whole run."""
    wanted = set(names)
    skipped: dict[str, str] = {}
    triton: Proc | None = None
    triton_url: str | None = None
    if wanted & TRITON:
        why = systems.triton_available()
        if why is None:
            triton, answer = systems.start_triton(procs, load_cpus)
            triton_url, why = (answer, None) if triton is not None else (None, answer)
        if why is not None:
            skipped |= {name: why for name in sorted(wanted & TRITON)}
            wanted -= TRITON
    upstream, up = systems.start_upstream(procs, nginx, load_cpus)
    made: dict[str, Scenario] = {"upstream": Scenario("upstream", up + INFER, upstream)}
    if "nginx-proxy" in wanted:
        proxy, url = systems.start_proxy(procs, nginx, sut_cpus, up)
        made["nginx-proxy"] = Scenario("nginx-proxy", url + INFER, proxy)
    if "forwarder" in wanted:
        forwarder, url = systems.start_forwarder(procs, sut_cpus, up)
        made["forwarder"] = Scenario("forwarder", url + INFER, forwarder)
    if triton is not None and triton_url is not None:
        url = triton_url + "/v2/models/linear/versions/1/infer"
        made["triton"] = Scenario("triton", url, triton)
    if wanted & OPEN:
        routes = systems.open_routes(up, triton_url)
        gw = systems.start_gateway(procs, "gateway-open", routes, sut_cpus, workers)
        made["gateway-passthrough"] = Scenario(
            "gateway-passthrough", gw.url + "/up" + INFER, gw.proc
        )
        made["gateway-v2"] = Scenario("gateway-v2", gw.url + INFER, gw.proc)
        if triton_url is not None:
            url = gw.url + "/v2/models/linear-triton/infer"
            made["gateway-triton"] = Scenario("gateway-triton", url, gw.proc)
    if wanted & FULL:
        _, redis = systems.start_redis(procs, load_cpus)
        gw, creds = systems.start_full_gateway(procs, sut_cpus, workers, up, redis)
        key, bearer = {"X-API-Key": creds.api_key}, {"Authorization": f"Bearer {creds.token}"}
        made["gateway-full"] = Scenario(
            "gateway-full", gw.url + INFER, gw.proc, key, True, "fwd=miss", True
        )
        made["gateway-jwt"] = Scenario(
            "gateway-jwt", gw.url + INFER, gw.proc, bearer, True, "fwd=miss", True
        )
        made["gateway-hit"] = Scenario(
            "gateway-hit", gw.url + INFER, gw.proc, key, False, "hit", True
        )
    chosen = [made[name] for name in names if name in made]
    for scenario in chosen:
        check(scenario)
    return Setup(chosen, skipped)


def _body(scenario: Scenario) -> str:
    if scenario.unique:
        return '{"id":"check-' + uuid.uuid4().hex + '",' + INPUTS + "}"
    return BODY


def _post(client: httpx.Client, scenario: Scenario) -> httpx.Response:
    headers = {"Content-Type": "application/json", **scenario.headers}
    return client.post(scenario.url, content=_body(scenario), headers=headers)


def check(scenario: Scenario, timeout: float = 20.0) -> None:
    """One real request (two for a hit): 200, a v2 reply and the headers the scenario implies.
    Retries while the gateway's first health checks settle, then fails loudly."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        while True:
            try:
                reply = _post(client, scenario)
                if reply.status_code == 200:
                    break
                problem = f"{reply.status_code} {reply.text[:300]}"
            except httpx.HTTPError as exc:
                problem = repr(exc)
            if time.monotonic() > deadline:
                raise BenchError(f"scenario {scenario.name}: POST {scenario.url} -> {problem}")
            time.sleep(0.25)
        if scenario.cache == "hit":
            reply = _post(client, scenario)
    problems = []
    if reply.status_code != 200:
        problems.append(f"status {reply.status_code}")
    try:
        if "outputs" not in reply.json():
            problems.append("no 'outputs' in the reply")
    except ValueError:
        problems.append("the reply is not JSON")
    status = reply.headers.get("cache-status", "")
    if scenario.cache is not None and scenario.cache not in status.split("; "):
        problems.append(f"Cache-Status {status!r}, expected {scenario.cache}")
    if scenario.limited and "ratelimit" not in reply.headers:
        problems.append("no RateLimit header: the rate limit is not applied")
    if problems:
        raise BenchError(f"scenario {scenario.name} is misconfigured: {'; '.join(problems)}")
