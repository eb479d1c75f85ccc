"""The routes.yaml model: a validated, frozen :class:`RouteTable`, and its JSON Schema.

Validation is strict (unknown keys, bad durations, dangling references and weights that do not
add up are all errors) and every error names its YAML path and line, so ``gateway check`` can
point an operator at the exact place. The same pydantic models publish the file's JSON Schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)

from gateway.auth.config import AuthConfig
from gateway.backends.spec import BackendSpec
from gateway.backends.specs import SPECS
from gateway.batching.config import BatchingSpec
from gateway.caching.config import CacheSpec
from gateway.codecs.datatypes import DATATYPES
from gateway.config.types import Problem, Strict, problems_error
from gateway.jobs.config import JobsConfig
from gateway.limits.config import LimitSpec, Plan, RateLimits
from gateway.traffic.config import Rollout, Shadow, Sticky


def _backend_by_kind(value: Any, handler: ValidatorFunctionWrapHandler) -> BackendSpec:
    """Validate a backend with the spec its ``kind`` names in the registry of specs."""
    if isinstance(value, BackendSpec):
        return value
    kind = value.get("kind") if isinstance(value, Mapping) else None
    spec = SPECS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        known = ", ".join(f"'{k}'" for k in SPECS)
        given = "no kind" if kind is None else f"kind {kind!r}"
        problem = f"{given}: the kind must be one of {known}"
        raise problems_error(BackendSpec.__name__, [(("kind",), problem)])
    return spec.model_validate(value)


# Each backend is validated by its own kind's spec (gateway.backends.specs.SPECS); the JSON
# Schema lists them all (json_schema below).
Backend = Annotated[BackendSpec, WrapValidator(_backend_by_kind)]


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
    batching: BatchingSpec | None = Field(
        default=None, description="Join concurrent requests into batches (dimension 0)."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )

    @model_validator(mode="after")
    def _batch_dimension(self) -> Version:
        """Batching joins along the first dimension: a declared input must leave it free."""
        if self.batching is None or not self.inputs:
            return self
        problems: list[Problem] = []
        for i, tensor in enumerate(self.inputs):
            if not tensor.shape or tensor.shape[0] != -1:
                first = tensor.shape[0] if tensor.shape else "none (a scalar)"
                problems.append(
                    (
                        ("batching",),
                        f"batching joins requests along the first dimension, but input "
                        f"{tensor.name!r} (inputs[{i}]) declares it as {first}: declare -1",
                    )
                )
        if problems:
            raise problems_error(type(self).__name__, problems)
        return self


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
        # pydantic runs this again on every model of a table (an instance is not validated
        # again, but its after-validators run): most models name nothing to check
        if (self.default, self.traffic, self.cache, self.shadow, self.rollout) == _NOTHING:
            return self
        problems: list[Problem] = []
        if self.default is not None and self.default not in self.versions:
            problems.append((("default",), f"default version {self.default!r} is not in versions"))
        problem = _traffic_problem(self.traffic, self.versions)
        if problem is not None:
            problems.append((("traffic",), problem))
        if self.cache is not None and not self.deterministic:
            problems.append((("cache",), "caching needs deterministic: true on the model"))
        problems += _shadow_problems(self) + _rollout_problems(self)
        if problems:
            raise problems_error(type(self).__name__, problems)
        return self

    @property
    def default_version(self) -> str:
        if self.default is not None:
            return self.default
        return max(self.versions, key=version_sort_key)


_NOTHING: Final = (None, None, None, None, None)


def _shadow_problems(model: Model) -> list[Problem]:
    shadow = model.shadow
    if shadow is None or shadow.version in model.versions:
        return []
    return [(("shadow", "version"), f"shadow version {shadow.version!r} is not in versions")]


def _rollout_problems(model: Model) -> list[Problem]:
    rollout = model.rollout
    if rollout is None:
        return []
    problems: list[Problem] = []
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


class PassthroughRoute(Strict):
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
    routes: list[PassthroughRoute] = []
    plans: dict[str, Plan] = Field(default={}, description="Tenants' rate plans.")
    rate_limits: RateLimits = RateLimits()
    auth: AuthConfig | None = Field(
        default=None, description="Authentication; without it every call is let in."
    )
    jobs: JobsConfig = Field(
        default=JobsConfig(), description="Async jobs: queue limits, retries, workers."
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
                raise problems_error(exc.title, problems, exc.errors()) from exc
            raise
        if problems:
            raise problems_error(cls.__name__, problems)
        return table


def _version_backends(model: Any) -> list[tuple[str, str]]:
    """(version, backend name) of a model, raw from YAML or already validated (a model the
    last load validated from the same text: ``fast_path.py``); what is not text is skipped
    (it is reported on its own)."""
    if isinstance(model, Model):
        return [(name, version.backend) for name, version in model.versions.items()]
    versions = model.get("versions") if isinstance(model, Mapping) else None
    if not isinstance(versions, Mapping):
        return []
    return [
        (str(name), version["backend"])
        for name, version in versions.items()
        if isinstance(version, Mapping) and isinstance(version.get("backend"), str)
    ]


def _reference_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Dangling backend names and clashing route paths, in the raw (unvalidated) file."""
    backends = data.get("backends")
    if not isinstance(backends, Mapping):
        return []  # nothing to refer to; reported on its own
    kinds = {str(k): b.get("kind") if isinstance(b, Mapping) else None for k, b in backends.items()}
    grpc = {
        str(k)
        for k, b in backends.items()
        if isinstance(b, Mapping) and b.get("protocol") == "grpc"
    }
    problems: list[Problem] = []
    serving = {name for name, kind in kinds.items() if _serves_models(kind)}
    models = data.get("models")
    for model_name, model in models.items() if isinstance(models, Mapping) else ():
        for version_name, name in _version_backends(model):
            if name in serving:
                continue
            loc = ("models", str(model_name), "versions", version_name, "backend")
            if name not in kinds:
                problems.append((loc, f"no backend named {name!r}"))
            else:
                problems.append((loc, f"{name!r} is kind {kinds[name]} (passthrough only)"))
    routes = data.get("routes")
    seen: set[str] = set()
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, Mapping):
            continue
        backend, path = route.get("backend"), route.get("path")
        if isinstance(backend, str) and backend not in kinds:
            problems.append((("routes", i, "backend"), f"no backend named {backend!r}"))
        elif backend in grpc:
            problem = f"{backend!r} has protocol grpc: passthrough routes relay HTTP only"
            problems.append((("routes", i, "backend"), problem))
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


def _serves_models(kind: Any) -> bool:
    spec = SPECS.get(kind) if isinstance(kind, str) else None
    return spec is None or spec.serves_models  # an unknown kind is reported on its own


def json_schema() -> dict[str, Any]:
    """The published JSON Schema for routes.yaml (``gateway schema``): a backend is one of the
    registered kinds' specs (``SPECS``), told apart by ``kind``."""
    schema = RouteTable.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    refs = {}
    for kind, spec_class in SPECS.items():
        spec = spec_class.model_json_schema(ref_template="#/$defs/{model}", mode="validation")
        defs.update(spec.pop("$defs", {}))
        defs[spec_class.__name__] = spec
        refs[kind] = f"#/$defs/{spec_class.__name__}"
    defs.pop(BackendSpec.__name__, None)
    # if/then per kind (not oneOf): a validator then reports the one spec's own errors, at
    # their own path, rather than "matches none of the schemas".
    schema["properties"]["backends"]["additionalProperties"] = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(refs)}},
        "allOf": [
            {"if": {"properties": {"kind": {"const": kind}}}, "then": {"$ref": ref}}
            for kind, ref in refs.items()
        ],
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "model-gateway routes.yaml"
    return schema
