"""The routes.yaml model: a validated, frozen :class:`RouteTable`, and its JSON Schema.

Validation is strict (unknown keys, bad durations, dangling references and weights that do not
add up are all errors) and every error names its YAML path and line, so ``gateway check`` can
point an operator at the exact place. The same pydantic models publish the file's JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails

from gateway.auth.config import AuthConfig
from gateway.config_types import URL, Duration, Ratio, Strict
from gateway.inference import DATATYPES
from gateway.limits_config import CacheSpec, LimitSpec, Plan, RateLimits
from gateway.traffic_config import Rollout, Shadow, Sticky

BackendKind = Literal["torchserve", "tfserving", "triton", "kserve", "http"]
# A path below the model being checked, and what is wrong there.
_Problem = tuple[tuple[str | int, ...], str]


def _problems_error(
    title: str, problems: Sequence[_Problem], errors: Sequence[ErrorDetails] = ()
) -> ValidationError:
    """One error holding pydantic's own ``errors`` and our cross-field ``problems``, each at its
    own path (hence line), so one ``gateway check`` lists every mistake in the file."""
    details = [
        InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
        for e in errors
    ]
    details += [
        InitErrorDetails(type="value_error", loc=loc, input=None, ctx={"error": ValueError(msg)})
        for loc, msg in problems
    ]
    return ValidationError.from_exception_data(title, details)


class HealthCheck(Strict):
    """Active health checks, using each server kind's real readiness probe."""

    interval: Duration = 5.0
    timeout: Duration = 1.0
    unhealthy_after: int = Field(default=2, ge=1, description="Failed probes before ejection.")
    healthy_after: int = Field(default=1, ge=1, description="Good probes before readmission.")


class OutlierDetection(Strict):
    """Passive ejection of a replica after consecutive failures seen on live traffic."""

    consecutive_failures: int = Field(default=5, ge=1)
    ejection: Duration = Field(default=10.0, description="Base ejection time, grows per repeat.")
    max_ejected: Ratio = Field(default=0.5, description="Never eject more than this share.")


class Retries(Strict):
    """Retries on another replica, only where safe (connect errors, 503 from an idle replica)."""

    attempts: int = Field(default=2, ge=1, le=10, description="Tries in all, the first included.")
    budget: Ratio = Field(default=0.2, description="Retries allowed as a share of requests.")
    min_per_second: float = Field(default=3.0, ge=0, description="Retries always allowed.")


class Backend(Strict):
    kind: BackendKind
    urls: list[URL] = Field(min_length=1, description="Replica base URLs.")
    management_urls: list[URL] | None = Field(
        default=None, description="TorchServe management API, one per replica (readiness)."
    )
    timeout: Duration = Field(default=30.0, description="Per-try timeout.")
    connect_timeout: Duration = 1.0
    deadline: Duration | None = Field(
        default=None, description="Overall deadline including retries (default: 2 × timeout)."
    )
    max_in_flight: int = Field(default=1024, ge=1, description="Circuit breaker: cap per backend.")
    retries: Retries = Retries()
    health: HealthCheck = HealthCheck()
    outlier: OutlierDetection = OutlierDetection()

    @model_validator(mode="after")
    def _check_management(self) -> Backend:
        if self.kind == "torchserve" and self.management_urls is None:
            raise ValueError(
                "kind torchserve needs management_urls: readiness comes from the management "
                "API, since /ping says Healthy while workers crash"
            )
        if self.management_urls is not None:
            problem = None
            if self.kind != "torchserve":
                problem = "management_urls only applies to kind: torchserve"
            elif len(self.management_urls) != len(self.urls):
                problem = "management_urls needs one entry per url"
            if problem is not None:
                raise _problems_error(type(self).__name__, [(("management_urls",), problem)])
        return self

    @property
    def overall_deadline(self) -> float:
        return self.deadline if self.deadline is not None else 2 * self.timeout


class TensorSpec(Strict):
    name: str = Field(min_length=1)
    datatype: str
    shape: list[int]

    @field_validator("datatype")
    @classmethod
    def _check_datatype(cls, value: str) -> str:
        if value not in DATATYPES:
            raise ValueError(f"unknown datatype {value!r}; one of {', '.join(sorted(DATATYPES))}")
        return value


class Version(Strict):
    backend: str
    name: str | None = Field(default=None, description="Backend-native model name.")
    version: Annotated[str | None, WithJsonSchema({"type": ["string", "number", "null"]})] = Field(
        default=None, description="Backend-native version."
    )
    inputs: list[TensorSpec] | None = Field(
        default=None, description="Declared inputs; else read from the backend's metadata."
    )
    outputs: list[TensorSpec] | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


class Model(Strict):
    versions: dict[str, Version] = Field(min_length=1)
    default: Annotated[str | None, WithJsonSchema({"type": ["string", "integer", "null"]})] = Field(
        default=None, description="Default version (else the highest)."
    )
    traffic: dict[str, int] | None = Field(
        default=None, description="Weighted split between versions, in percent (sums to 100)."
    )
    deterministic: bool = Field(
        default=False, description="Same input, same output: required for caching."
    )
    cache: CacheSpec | None = None
    limits: LimitSpec | None = Field(default=None, description="A rate for the model, all callers.")
    sticky: Sticky | None = Field(default=None, description="Keep each caller on one version.")
    shadow: Shadow | None = Field(default=None, description="Mirror a share to another version.")
    rollout: Rollout | None = Field(default=None, description="A progressive canary rollout.")

    @field_validator("versions", "traffic", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("default", mode="before")
    @classmethod
    def _default_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check_versions(self) -> Model:
        problems: list[_Problem] = []
        if self.default is not None and self.default not in self.versions:
            problems.append((("default",), f"default version {self.default!r} is not in versions"))
        problem = _traffic_problem(self.traffic, self.versions)
        if problem is not None:
            problems.append((("traffic",), problem))
        if self.cache is not None and not self.deterministic:
            problems.append((("cache",), "caching needs deterministic: true on the model"))
        problems += _shadow_problems(self) + _rollout_problems(self)
        if problems:
            raise _problems_error(type(self).__name__, problems)
        return self

    @property
    def default_version(self) -> str:
        if self.default is not None:
            return self.default
        return max(self.versions, key=version_sort_key)


def _shadow_problems(model: Model) -> list[_Problem]:
    shadow = model.shadow
    if shadow is None or shadow.version in model.versions:
        return []
    return [(("shadow", "version"), f"shadow version {shadow.version!r} is not in versions")]


def _rollout_problems(model: Model) -> list[_Problem]:
    rollout = model.rollout
    if rollout is None:
        return []
    problems: list[_Problem] = []
    if rollout.canary not in model.versions:
        problems.append((("rollout", "canary"), f"canary {rollout.canary!r} is not in versions"))
    stable = rollout.stable if rollout.stable is not None else model.default_version
    if rollout.stable is not None and rollout.stable not in model.versions:
        problems.append((("rollout", "stable"), f"stable {rollout.stable!r} is not in versions"))
    elif stable == rollout.canary:
        problems.append((("rollout", "canary"), "the canary must differ from the stable version"))
    return problems


def _traffic_problem(traffic: Mapping[str, int] | None, versions: Mapping[str, Any]) -> str | None:
    if traffic is None:
        return None
    unknown = sorted(set(traffic) - set(versions))
    if unknown:
        return f"traffic names unknown versions: {', '.join(unknown)}"
    if any(w < 0 for w in traffic.values()):
        return "traffic weights must not be negative"
    if sum(traffic.values()) != 100:
        return f"traffic weights add up to {sum(traffic.values())}, not 100"
    return None


def version_sort_key(version: str) -> tuple[int, float, str]:
    try:
        return (1, float(version), version)
    except ValueError:
        return (0, 0.0, version)


class Route(Strict):
    """An extra public path prefix forwarded as-is (streamed) to one backend."""

    path: str = Field(pattern=r"^/[^\s]*/$", description="A prefix that starts and ends with '/'.")
    backend: str
    strip_prefix: bool = Field(default=False, description="Drop the prefix before forwarding.")
    forward_authorization: bool = Field(
        default=False, description="Forward the client's Authorization header."
    )
    methods: list[str] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    scopes: list[str] | None = Field(
        default=None,
        description="Scopes a caller needs when auth is on (default: passthrough:<backend>).",
    )


class RouteTable(Strict):
    """The whole validated routes.yaml; the running gateway holds one and swaps it atomically."""

    backends: dict[str, Backend] = Field(min_length=1)
    models: dict[str, Model] = {}
    routes: list[Route] = []
    plans: dict[str, Plan] = Field(default={}, description="Tenants' rate plans.")
    rate_limits: RateLimits = RateLimits()
    auth: AuthConfig | None = Field(
        default=None, description="Authentication; without it every call is let in."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _check_references(
        cls, data: Any, handler: ModelWrapValidatorHandler[RouteTable]
    ) -> RouteTable:
        # Names are read from the raw input, so a dangling reference is reported even when
        # another part of the file fails validation (an after-validator would not run then).
        problems = _reference_problems(data) if isinstance(data, Mapping) else []
        try:
            table = handler(data)
        except ValidationError as exc:
            if problems:
                raise _problems_error(exc.title, problems, exc.errors()) from exc
            raise
        if problems:
            raise _problems_error(cls.__name__, problems)
        return table


def _items(value: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """The mapping entries of a raw YAML value, keys as text; anything else has none."""
    if not isinstance(value, Mapping):
        return []
    return [(str(k), v) for k, v in value.items() if isinstance(v, Mapping)]


def _reference_problems(data: Mapping[str, Any]) -> list[_Problem]:
    """Dangling backend names and clashing route paths, in the raw (unvalidated) file."""
    backends = data.get("backends")
    if not isinstance(backends, Mapping):
        return []  # nothing to refer to; reported on its own
    kinds = {str(k): b.get("kind") if isinstance(b, Mapping) else None for k, b in backends.items()}
    problems: list[_Problem] = []
    for model_name, model in _items(data.get("models")):
        for version_name, version in _items(model.get("versions")):
            backend = version.get("backend")
            loc = ("models", model_name, "versions", version_name, "backend")
            if not isinstance(backend, str):
                continue
            if backend not in kinds:
                problems.append((loc, f"no backend named {backend!r}"))
            elif kinds[backend] == "http":
                problems.append((loc, f"{backend!r} is kind http (passthrough only)"))
    routes = data.get("routes")
    seen: set[str] = set()
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, Mapping):
            continue
        backend, path = route.get("backend"), route.get("path")
        if isinstance(backend, str) and backend not in kinds:
            problems.append((("routes", i, "backend"), f"no backend named {backend!r}"))
        if not isinstance(path, str):
            continue
        if path in seen:
            problems.append((("routes", i, "path"), f"{path!r} is listed twice"))
        if path.startswith(("/v1/", "/v2/", "/admin/")) or path in {"/v1", "/v2"}:
            problems.append((("routes", i, "path"), f"{path!r} shadows the inference API"))
        seen.add(path)
    plans = data.get("plans")
    limits = data.get("rate_limits")
    default_plan = limits.get("default_plan") if isinstance(limits, Mapping) else None
    if isinstance(default_plan, str) and not (isinstance(plans, Mapping) and default_plan in plans):
        problems.append((("rate_limits", "default_plan"), f"no plan named {default_plan!r}"))
    return problems


def json_schema() -> dict[str, Any]:
    """The published JSON Schema for routes.yaml (``gateway schema``)."""
    schema = RouteTable.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "model-gateway routes.yaml"
    return schema
