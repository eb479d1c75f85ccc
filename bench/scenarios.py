"""The scenarios: what each one measures, which process is the system under test, and a check
that each answers 200 with the headers it should before anything is measured."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from bench import systems
from bench.procs import BenchError, Proc, Processes
from bench.wrk import BODY, lua_script, new_nonce, unique_body

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
GATEWAYS = OPEN | FULL  # with --baseline-gateway each gets a twin "<name>@base"
TWIN = "@base"


def twin(name: str) -> str:
    """The name of a gateway scenario's twin on the baseline gateway."""
    return name + TWIN


def original(name: str) -> str:
    """``gateway-v2@base`` -> ``gateway-v2``; any other name unchanged."""
    return name.removesuffix(TWIN)


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
        return BASELINE.get(original(self.name), "upstream")

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
    baseline_gateway: str | None = None,
) -> Setup:
    """Start every system the chosen scenarios need, once; they run for the whole run. With
    ``baseline_gateway`` (another installation's ``gateway`` executable) the same gateways are
    started from it too, and every gateway scenario gets a twin ``<name>@base`` right after it."""
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
    # (suffix, executable): the gateway under test, then the baseline installation's
    gateways = [("", systems.GATEWAY)]
    if baseline_gateway is not None:
        gateways.append((TWIN, baseline_gateway))
    if wanted & OPEN:
        routes = systems.open_routes(up, triton_url)
        for suffix, exe in gateways:
            gw = systems.start_gateway(
                procs, "gateway-open" + suffix, routes, sut_cpus, workers, executable=exe
            )
            for s in _open_scenarios(gw, triton_url is not None):
                made[s.name + suffix] = _renamed(s, suffix)
    if wanted & FULL:
        _, redis = systems.start_redis(procs, load_cpus)
        signer = systems.JwtSigner.new(procs.workdir / "jwt-public.pem")
        for suffix, exe in gateways:
            gw, creds = systems.start_full_gateway(
                procs, sut_cpus, workers, up, redis, signer, "gateway-auth" + suffix, exe
            )
            for s in _full_scenarios(gw, creds):
                made[s.name + suffix] = _renamed(s, suffix)
    chosen: list[Scenario] = []
    for name in names:
        chosen += [made[n] for n in (name, twin(name)) if n in made]
    for scenario in chosen:
        check(scenario)
    return Setup(chosen, skipped)


def _renamed(scenario: Scenario, suffix: str) -> Scenario:
    return replace(scenario, name=scenario.name + suffix)


def _open_scenarios(gw: systems.Gateway, triton: bool) -> list[Scenario]:
    """Scenarios 4, 5 and 10 on one gateway with the open config."""
    out = [
        Scenario("gateway-passthrough", gw.url + "/up" + INFER, gw.proc),
        Scenario("gateway-v2", gw.url + INFER, gw.proc),
    ]
    if triton:
        out.append(Scenario("gateway-triton", gw.url + "/v2/models/linear-triton/infer", gw.proc))
    return out


def _full_scenarios(gw: systems.Gateway, creds: systems.Credentials) -> list[Scenario]:
    """Scenarios 6-8 on one gateway with the auth config."""
    key, bearer = {"X-API-Key": creds.api_key}, {"Authorization": f"Bearer {creds.token}"}
    url = gw.url + INFER
    return [
        Scenario("gateway-full", url, gw.proc, key, True, "fwd=miss", True),
        Scenario("gateway-jwt", url, gw.proc, bearer, True, "fwd=miss", True),
        Scenario("gateway-hit", url, gw.proc, key, False, "hit", True),
    ]


def _body(scenario: Scenario) -> str:
    if scenario.unique:  # like the wrk script's: a fresh id and fresh input data
        return unique_body("check-" + uuid.uuid4().hex, new_nonce(), 1)
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
    # Only what every gateway version answers (so that a baseline gateway passes too): the
    # Cache-Status text contains "fwd=miss" or "hit"; some RateLimit header is there.
    status = reply.headers.get("cache-status", "")
    if scenario.cache is not None and scenario.cache not in status:
        problems.append(f"Cache-Status {status!r}, expected {scenario.cache}")
    if scenario.limited and not any(h.startswith("ratelimit") for h in reply.headers):
        problems.append("no RateLimit header: the rate limit is not applied")
    if problems:
        raise BenchError(f"scenario {scenario.name} is misconfigured: {'; '.join(problems)}")
