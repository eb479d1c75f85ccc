"""The scenarios: what each one measures, which process is the system under test, and a check
that each answers 200 with the headers it should before anything is measured."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
import httpx

from bench import grpc_calls, h2load, peers, systems, tensor, wrk
from bench.loadgen import LoadResult
from bench.procs import BenchError, Proc, Processes
from bench.wrk import BODY, lua_script, new_nonce, unique_body

INFER = "/v2/models/linear/infer"

# name -> what it measures (the README's table says the same)
SCENARIOS: dict[str, str] = {
    "upstream": "nginx alone answering a fixed KServe v2 reply (the ceiling)",
    "nginx-proxy": "nginx reverse proxy (keepalive upstream) in front of the upstream",
    "haproxy-proxy": "HAProxy reverse proxy (HTTP/1.1 keep-alive upstream), the same place",
    "forwarder": "minimal Starlette + aiohttp forwarder (the floor for our stack)",
    "gateway-passthrough": "gateway passthrough route /up/ (strip_prefix) to the upstream",
    "gateway-v2": "gateway unified v2 infer, kserve backend, no auth, limits or cache",
    "gateway-full": "API key + Redis rate limit + cache, every request a MISS",
    "gateway-jwt": "RS256 JWT + Redis rate limit + cache, every request a MISS",
    "gateway-hit": "API key + Redis rate limit + cache, every request a HIT",
    "triton": "real Triton (python backend) alone, v2 infer on linear",
    "gateway-triton": "the gateway (no auth) in front of that Triton",
    "triton-grpc": "h2load: KServe v2 gRPC ModelInfer straight to Triton's gRPC port",
    "gateway-grpc": "h2load: gRPC ModelInfer to the gateway, Triton behind it over HTTP",
    "gateway-grpc-grpc": "h2load: gRPC ModelInfer to the gateway, Triton behind it over gRPC",
    "forwarder-tensor": "the forwarder relaying a 1x3x224x224 FP32 tensor as v2 JSON",
    "gateway-tensor-json": "gateway: that tensor as v2 JSON (every number as text)",
    "gateway-tensor-binary": "gateway: that tensor as binary tensor data (header + raw bytes)",
    "gateway-nobatch": "gateway before Triton's batched_linear (5 ms per execute), no batching",
    "gateway-batch": "the same with gateway-side batching (max_batch_size 64, max_delay 2ms)",
    "litellm-chat": "LiteLLM proxy: master key + router rpm in Redis, OpenAI chat to the upstream",
    "gateway-openai": "gateway: API key + Redis rate limit, the same chat request (passthrough)",
    "litellm-passthrough": "LiteLLM pass-through endpoint (master key) to the v2 infer URL",
    "floor-full": "bench/floor.py: gateway-full's work (key, v2 decode, cache key, the limit's "
    "Lua on the lane, h1 upstream, FILL) on a raw protocol, nothing else: the Python floor",
    "floor-hit": "bench/floor.py: gateway-hit's work the same way (answered from the entry)",
}
# added latency (and the ratios' table) is over this; any other scenario: over upstream
BASELINE: dict[str, str | None] = {
    "gateway-triton": "triton",
    "triton-grpc": None,
    "gateway-grpc": "triton-grpc",
    "gateway-grpc-grpc": "triton-grpc",
    "forwarder-tensor": None,
    "gateway-tensor-json": "forwarder-tensor",
    "gateway-tensor-binary": None,
    "gateway-nobatch": None,
    "gateway-batch": "gateway-nobatch",
}
# req/s "x fwd" is over this forwarder (none: no column) and "x nginx" over the proxy, for the
# scenarios that send the small v2 body over HTTP/1.1
FORWARDER: dict[str, str | None] = {
    "triton-grpc": None,
    "gateway-grpc": None,
    "gateway-grpc-grpc": None,
    "forwarder-tensor": "forwarder-tensor",
    "gateway-tensor-json": "forwarder-tensor",
    "gateway-tensor-binary": None,
    "gateway-nobatch": None,
    "gateway-batch": None,
}
# (scenario, against): the ratios printed below the table and kept in the JSON
RATIOS = (
    ("gateway-triton", "triton"),
    ("gateway-grpc", "triton-grpc"),
    ("gateway-grpc-grpc", "triton-grpc"),
    ("gateway-grpc", "gateway-triton"),
    ("gateway-tensor-json", "gateway-tensor-binary"),
    ("gateway-tensor-json", "forwarder-tensor"),
    ("gateway-batch", "gateway-nobatch"),
    ("haproxy-proxy", "nginx-proxy"),
    ("gateway-openai", "litellm-chat"),
    ("gateway-full", "litellm-passthrough"),
    ("gateway-v2", "litellm-passthrough"),
)
GRPC = {"triton-grpc", "gateway-grpc", "gateway-grpc-grpc"}
TENSOR = {"forwarder-tensor", "gateway-tensor-json", "gateway-tensor-binary"}
BATCH = {"gateway-nobatch", "gateway-batch"}
OPEN = BATCH | {
    "gateway-passthrough",
    "gateway-v2",
    "gateway-triton",
    "gateway-grpc",
    "gateway-grpc-grpc",
    "gateway-tensor-json",
    "gateway-tensor-binary",
}
FULL = {"gateway-full", "gateway-jwt", "gateway-hit", "gateway-openai"}
LITELLM = {"litellm-chat", "litellm-passthrough"}
FLOOR = {"floor-full", "floor-hit"}
REDIS = FULL | LITELLM | FLOOR  # the scenarios that need a redis-server
TRITON = BATCH | {"triton", "gateway-triton", "triton-grpc", "gateway-grpc", "gateway-grpc-grpc"}
GATEWAYS = OPEN | FULL  # with --baseline-gateway each gets a twin "<name>@base"
# twins that an older baseline gateway may not serve (no gRPC frontend, no binary tensors, no
# gRPC backends): skipped with the reason instead of stopping the run
NEWER = GRPC | TENSOR | BATCH
TWIN = "@base"
TENSOR_PATH = "/v2/models/tensor/infer"
OUTPUT_SHAPE = [1, 2]


def twin(name: str) -> str:
    """The name of a gateway scenario's twin on the baseline gateway."""
    return name + TWIN


def original(name: str) -> str:
    """``gateway-v2@base`` -> ``gateway-v2``; any other name unchanged."""
    return name.removesuffix(TWIN)


@dataclass(frozen=True)
class FixedBody:
    """One fixed body from a file, sent on every request (the large tensor)."""

    path: Path
    content_type: str

    @classmethod
    def chat(cls, workdir: Path) -> FixedBody:
        """The OpenAI chat request of the LiteLLM comparison."""
        path = workdir / "chat.json"
        path.write_text(peers.CHAT_BODY)
        return cls(path, "application/json")


@dataclass
class GrpcCall:
    """A unary gRPC call h2load makes: ``message`` (a serialized ModelInferRequest) to
    ``address``; ``reply_frame`` is the size of the reply's length-prefixed message, learnt
    from the check call."""

    address: str
    message: bytes
    reply_frame: int = 0


@dataclass
class Scenario:
    name: str
    url: str
    sut: Proc  # whose CPU is counted (with its descendants)
    headers: dict[str, str] = field(default_factory=dict)
    unique: bool = False  # a different body on every request (cache misses)
    cache: str | None = None  # the Cache-Status it must answer: "fwd=miss" or "hit"
    limited: bool = False  # must answer RateLimit headers
    body: FixedBody | None = None  # a fixed body from a file (else the v2 BODY)
    grpc: GrpcCall | None = None  # h2load, a gRPC unary call (else wrk, HTTP/1.1)
    # the server's own count of answered and failed requests, read around each measured run
    counts: Callable[[], grpc_calls.Counts] | None = None
    reply: str = "outputs"  # the key the reply's JSON object must have ("choices": OpenAI)

    @property
    def baseline(self) -> str | None:
        return BASELINE.get(original(self.name), "upstream")

    @property
    def tool(self) -> str:
        return "h2load" if self.grpc is not None else "wrk"

    def script(self, workdir: Path) -> Path:
        """A fresh Lua script (a new nonce for unique bodies) for one wrk run."""
        path = workdir / f"{self.name}.lua"
        body, kind = (self.body.path, self.body.content_type) if self.body else (None, None)
        path.write_text(lua_script(self.headers, self.unique, body, kind or "application/json"))
        return path

    def load(
        self, workdir: Path, concurrency: int, seconds: float, cpus: Sequence[int]
    ) -> LoadResult:
        """One run of this scenario's load generator."""
        if self.grpc is None:
            return wrk.run(self.url, concurrency, seconds, self.script(workdir), cpus)
        path = workdir / f"{self.name}.grpc"
        if not path.exists():
            path.write_bytes(h2load.frame(self.grpc.message))
        return h2load.run(self.url, concurrency, seconds, path, cpus)

    def unanswered(self, result: LoadResult) -> int:
        """gRPC: 2xx answers that carried no reply message (an error is HTTP 200 with a
        ``grpc-status`` trailer and no DATA): completed 2xx minus DATA bytes / reply frame."""
        if self.grpc is None or result.data_bytes is None or not self.grpc.reply_frame:
            return 0
        answered = result.data_bytes // self.grpc.reply_frame
        return max(0, result.requests - result.non_2xx - answered)


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
    haproxy: str | None = None,
    launch: systems.Launch = systems.DIRECT,
) -> Setup:
    """Start every system the chosen scenarios need, once; they run for the whole run. With
    ``baseline_gateway`` (another installation's ``gateway`` executable) the same gateways are
    started from it too, and every gateway scenario gets a twin ``<name>@base`` right after it.
    ``launch``: how the gateways start (under valgrind for ``bench.instructions``)."""
    wanted = set(names)
    skipped: dict[str, str] = {}
    triton: systems.Triton | None = None
    if wanted & TRITON:
        why = systems.triton_available()
        if why is None:
            started = systems.start_triton(procs, load_cpus, batched=bool(wanted & BATCH))
            triton, why = (
                (started, None) if isinstance(started, systems.Triton) else (None, started)
            )
        if why is not None:
            skipped |= {name: why for name in sorted(wanted & TRITON)}
            wanted -= TRITON
    bodies = tensor.write(procs.workdir) if wanted & TENSOR else None
    upstream, up = systems.start_upstream(procs, nginx, load_cpus)
    made: dict[str, Scenario] = {"upstream": Scenario("upstream", up + INFER, upstream)}
    if "nginx-proxy" in wanted:
        proxy, url = systems.start_proxy(procs, nginx, sut_cpus, up)
        made["nginx-proxy"] = Scenario("nginx-proxy", url + INFER, proxy)
    if "haproxy-proxy" in wanted:
        if haproxy is None:
            raise BenchError("haproxy-proxy needs haproxy (apt-get install -y haproxy)")
        proxy, url = peers.start_haproxy(procs, haproxy, sut_cpus, up)
        made["haproxy-proxy"] = Scenario("haproxy-proxy", url + INFER, proxy)
    if wanted & {"forwarder", "forwarder-tensor"}:
        forwarder, url = systems.start_forwarder(procs, sut_cpus, up, launch)
        made["forwarder"] = Scenario("forwarder", url + INFER, forwarder)
        if bodies is not None:
            json_body = FixedBody(bodies.json, "application/json")
            made["forwarder-tensor"] = Scenario(
                "forwarder-tensor", url + INFER, forwarder, body=json_body
            )
    if triton is not None:
        url = triton.url + "/v2/models/linear/versions/1/infer"
        made["triton"] = Scenario("triton", url, triton.proc)
        made["triton-grpc"] = Scenario(
            "triton-grpc",
            f"http://{triton.grpc_address}{h2load.MODEL_INFER}",
            triton.proc,
            grpc=GrpcCall(triton.grpc_address, h2load.linear_request("linear", "1")),
            counts=lambda: grpc_calls.triton_counts(triton.metrics_url + "/metrics"),
        )
    # (suffix, executable): the gateway under test, then the baseline installation's
    gateways = [("", systems.GATEWAY)]
    if baseline_gateway is not None:
        gateways.append((TWIN, baseline_gateway))
    if wanted & OPEN:
        for suffix, exe in gateways:
            routes, grpc_on, not_served = _open_config(exe, wanted, procs.workdir, up, triton)
            gw = systems.start_gateway(
                procs, "gateway-open" + suffix, routes, sut_cpus, workers, executable=exe,
                grpc=grpc_on, launch=launch,
            )  # fmt: skip
            skipped |= {n + suffix: why for n, why in not_served.items() if n in wanted}
            for s in _open_scenarios(gw, triton, bodies):
                if s.name not in not_served:
                    made[s.name + suffix] = _renamed(s, suffix)
    redis = systems.start_redis(procs, load_cpus)[1] if wanted & REDIS else ""
    if wanted & LITELLM:
        started_peer = peers.start_litellm(procs, sut_cpus, up, redis)
        if isinstance(started_peer, str):
            skipped |= {name: started_peer for name in sorted(wanted & LITELLM)}
        else:
            made |= {s.name: s for s in _litellm_scenarios(started_peer, procs.workdir)}
    if wanted & FLOOR:
        floor, url, api_key = systems.start_floor(procs, sut_cpus, up, redis, launch)
        key = {"X-API-Key": api_key}
        made["floor-full"] = Scenario("floor-full", url + INFER, floor, key, True, "fwd=miss", True)
        made["floor-hit"] = Scenario("floor-hit", url + INFER, floor, key, False, "hit", True)
    if wanted & FULL:
        signer = systems.JwtSigner.new(procs.workdir / "jwt-public.pem")
        for suffix, exe in gateways:
            gw, creds = systems.start_full_gateway(
                procs, sut_cpus, workers, up, redis, signer, "gateway-auth" + suffix, exe, launch
            )
            for s in _full_scenarios(gw, creds, procs.workdir):
                made[s.name + suffix] = _renamed(s, suffix)
    chosen: list[Scenario] = []
    for name in names:
        chosen += [made[n] for n in (name, twin(name)) if n in made]
    checked: list[Scenario] = []
    for scenario in chosen:
        try:
            check(scenario, max(20.0, launch.timeout))
        except BenchError as exc:
            if scenario.name == original(scenario.name) or original(scenario.name) not in NEWER:
                raise
            skipped[scenario.name] = f"the baseline gateway fails the check: {exc}"
            continue
        checked.append(scenario)
    return Setup(checked, skipped)


def _open_config(
    executable: str,
    wanted: set[str],
    workdir: Path,
    upstream: str,
    triton: systems.Triton | None,
) -> tuple[str, bool, dict[str, str]]:
    """The open config for this gateway executable: its routes, whether its gRPC frontend is
    on, and the scenarios it cannot serve (with why): ``gateway-grpc*`` without a gRPC
    frontend, ``gateway-grpc-grpc`` without ``protocol: grpc`` backends (``gateway check``)."""
    not_served: dict[str, str] = {}
    grpc_on = bool(wanted & GRPC - {"triton-grpc"}) and triton is not None
    if grpc_on and not systems.serves_grpc(executable):
        grpc_on = False
        for name in GRPC - {"triton-grpc"}:
            not_served[name] = f"{executable} has no gRPC frontend (serve --grpc-port)"
    tensor_on = bool(wanted & TENSOR)
    triton_url = triton.url if triton is not None else None
    batched = bool(wanted & BATCH) and triton is not None
    if batched:
        with_batching = systems.open_routes(upstream, triton_url, tensor_on, batched=True)
        problem = systems.accepts(executable, with_batching, workdir)
        if problem is not None:
            batched = False
            for name in BATCH:
                not_served[name] = f"{executable} has no batching: {problem}"
    routes = systems.open_routes(upstream, triton_url, tensor_on, batched=batched)
    if grpc_on and "gateway-grpc-grpc" in wanted and triton is not None:
        with_grpc = systems.open_routes(
            upstream, triton_url, tensor_on, triton.grpc_address, batched=batched
        )
        problem = systems.accepts(executable, with_grpc, workdir)
        if problem is None:
            routes = with_grpc
        else:
            not_served["gateway-grpc-grpc"] = (
                f"{executable} has no gRPC backends (protocol: grpc): {problem}"
            )
    return routes, grpc_on, not_served


def _renamed(scenario: Scenario, suffix: str) -> Scenario:
    return replace(scenario, name=scenario.name + suffix)


def _open_scenarios(
    gw: systems.Gateway, triton: systems.Triton | None, bodies: tensor.Bodies | None
) -> list[Scenario]:
    """Scenarios on one gateway with the open config: passthrough, v2, and where their
    backends run, Triton over HTTP (from HTTP and from gRPC), over gRPC, the large tensor."""
    out = [
        Scenario("gateway-passthrough", gw.url + "/up" + INFER, gw.proc),
        Scenario("gateway-v2", gw.url + INFER, gw.proc),
    ]
    if triton is not None:
        out.append(Scenario("gateway-triton", gw.url + "/v2/models/linear-triton/infer", gw.proc))
        for name in ("gateway-nobatch", "gateway-batch"):
            model = name.removeprefix("gateway-")
            out.append(Scenario(name, f"{gw.url}/v2/models/{model}/infer", gw.proc))
    if triton is not None and gw.grpc_address is not None:
        address = gw.grpc_address

        def counts() -> grpc_calls.Counts:
            return grpc_calls.gateway_grpc_counts(gw.url + "/metrics")

        url = f"http://{address}{h2load.MODEL_INFER}"
        for name, model in (
            ("gateway-grpc", "linear-triton"),
            ("gateway-grpc-grpc", "linear-triton-grpc"),
        ):
            call = GrpcCall(address, h2load.linear_request(model))
            out.append(Scenario(name, url, gw.proc, grpc=call, counts=counts))
    if bodies is not None:
        url = gw.url + TENSOR_PATH
        binary = {tensor.HEADER: str(bodies.header_length)}
        json_body = FixedBody(bodies.json, "application/json")
        binary_body = FixedBody(bodies.binary, tensor.BINARY_CONTENT_TYPE)
        out += [
            Scenario("gateway-tensor-json", url, gw.proc, body=json_body),
            Scenario("gateway-tensor-binary", url, gw.proc, binary, body=binary_body),
        ]
    return out


def _full_scenarios(
    gw: systems.Gateway, creds: systems.Credentials, workdir: Path
) -> list[Scenario]:
    """Scenarios 6-8 on one gateway with the auth config, and its OpenAI passthrough."""
    key, bearer = {"X-API-Key": creds.api_key}, {"Authorization": f"Bearer {creds.token}"}
    url = gw.url + INFER
    chat = FixedBody.chat(workdir)
    return [
        Scenario("gateway-full", url, gw.proc, key, True, "fwd=miss", True),
        Scenario("gateway-jwt", url, gw.proc, bearer, True, "fwd=miss", True),
        Scenario("gateway-hit", url, gw.proc, key, False, "hit", True),
        Scenario(
            "gateway-openai",
            gw.url + "/openai" + peers.CHAT_PATH,
            gw.proc,
            key,
            limited=True,
            body=chat,
            reply="choices",
        ),
    ]


def _litellm_scenarios(peer: peers.LiteLLM, workdir: Path) -> list[Scenario]:
    """LiteLLM's chat completion through its router, and its pass-through endpoint."""
    key = {"Authorization": f"Bearer {peer.master_key}"}
    return [
        Scenario(
            "litellm-chat",
            peer.url + peers.CHAT_PATH,
            peer.proc,
            key,
            body=FixedBody.chat(workdir),
            reply="choices",
        ),
        Scenario("litellm-passthrough", peer.url + peers.PASSTHROUGH_PATH, peer.proc, key),
    ]


def _body(scenario: Scenario) -> bytes:
    if scenario.body is not None:
        return scenario.body.path.read_bytes()
    if scenario.unique:  # like the wrk script's: a fresh id and fresh input data
        return unique_body("check-" + uuid.uuid4().hex, new_nonce(), 1).encode()
    return BODY.encode()


def _post(client: httpx.Client, scenario: Scenario, body: bytes) -> httpx.Response:
    kind = scenario.body.content_type if scenario.body else "application/json"
    headers = {"Content-Type": kind, **scenario.headers}
    return client.post(scenario.url, content=body, headers=headers)


def check(scenario: Scenario, timeout: float = 20.0) -> None:
    """One real request (two for a hit): 200, a v2 reply and the headers the scenario implies.
    Retries while the gateway's first health checks settle, then fails loudly."""
    if scenario.grpc is not None:
        check_grpc(scenario, timeout)
        return
    deadline = time.monotonic() + timeout
    body = _body(scenario)
    with httpx.Client(timeout=max(10.0, timeout / 2)) as client:
        while True:
            try:
                reply = _post(client, scenario, body)
                if reply.status_code == 200:
                    break
                problem = f"{reply.status_code} {reply.text[:300]}"
            except httpx.HTTPError as exc:
                problem = repr(exc)
            if time.monotonic() > deadline:
                raise BenchError(f"scenario {scenario.name}: POST {scenario.url} -> {problem}")
            time.sleep(0.25)
            body = _body(scenario)
        if scenario.cache == "hit":
            reply = _post(client, scenario, body)
    found = problems(scenario, reply.status_code, reply.headers, reply.content)
    if found:
        raise BenchError(f"scenario {scenario.name} is misconfigured: {'; '.join(found)}")


def problems(scenario: Scenario, status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """What is wrong with one answer of ``scenario`` (nothing: an empty list): not 200, not a
    JSON object with the key it must have, or without the headers the scenario implies.
    ``headers``: names in lower case (httpx's headers, or a dict)."""
    found = []
    if status != 200:
        found.append(f"status {status}")
    try:
        outputs = json.loads(body).get(scenario.reply)
        if outputs is None:
            found.append(f"no {scenario.reply!r} in the reply")
        elif scenario.body is not None and scenario.reply == "outputs":  # the large tensor
            shapes = [o.get("shape") for o in outputs]
            if shapes != [OUTPUT_SHAPE]:
                found.append(f"outputs of shapes {shapes}, expected [{OUTPUT_SHAPE}]")
    except (ValueError, AttributeError):
        found.append("the reply is not a JSON object")
    # Only what every gateway version answers (so that a baseline gateway passes too): the
    # Cache-Status text contains "fwd=miss" or "hit"; some RateLimit header is there.
    cache_status = headers.get("cache-status", "")
    if scenario.cache is not None and scenario.cache not in cache_status:
        found.append(f"Cache-Status {cache_status!r}, expected {scenario.cache}")
    if scenario.limited and not any(h.startswith("ratelimit") for h in headers):
        found.append("no RateLimit header: the rate limit is not applied")
    return found


def check_grpc(scenario: Scenario, timeout: float = 20.0) -> None:
    """A real gRPC call (grpcio) with the very message h2load sends: it must succeed (status
    OK) with one output of shape [1, 2]; its length-prefixed reply's size is what every reply
    of the measured runs must bring (``Scenario.unanswered``). Then the server's own counts
    must read."""
    call = scenario.grpc
    assert call is not None
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = grpc_calls.model_infer(call.address, call.message)
            break
        except grpc.RpcError as exc:
            problem = f"{exc.code()} {exc.details()}"
        if time.monotonic() > deadline:
            raise BenchError(f"scenario {scenario.name}: ModelInfer at {call.address} -> {problem}")
        time.sleep(0.25)
    if reply.output_shapes != [OUTPUT_SHAPE]:
        raise BenchError(
            f"scenario {scenario.name} is misconfigured: outputs of shapes "
            f"{reply.output_shapes}, expected [{OUTPUT_SHAPE}]"
        )
    call.reply_frame = len(h2load.frame(reply.message))
    if scenario.counts is not None:
        try:
            scenario.counts()
        except (httpx.HTTPError, ValueError) as exc:
            raise BenchError(f"scenario {scenario.name}: its server's counts: {exc!r}") from exc
