"""Process settings: command-line flags over ``GATEWAY_*`` environment variables, then frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.telemetry.cardinality import DEFAULT_MAX_MODELS
from gateway.telemetry.log_queue import DEFAULT_QUEUE_SIZE
from gateway.telemetry.logs import log_config
from gateway.telemetry.series.recorder import MAX_STEPS
from gateway.webhooks.callbacks import parse_networks


class Settings(BaseSettings):
    """Everything that is per process rather than per route table.

    Secrets (the admin token) live here, never in routes.yaml.
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    config: Path | None = Field(default=None, description="Path to routes.yaml.")
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_level: str = "info"
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log lines as JSON objects or as text with key=value pairs."
    )
    access_log: bool = Field(default=True, description="One access line per request (info).")
    log_queue_size: int = Field(
        default=DEFAULT_QUEUE_SIZE,
        ge=1,
        description="Log records waiting for the writer thread; beyond, lines are dropped.",
    )
    max_config_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1, description="routes.yaml files larger are refused."
    )
    tracing: bool | None = Field(
        default=None,
        description="OpenTelemetry traces; unset: on when OTEL_EXPORTER_OTLP_*ENDPOINT is set.",
    )
    tracing_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces sampled (parent-based) unless OTEL_TRACES_SAMPLER is set.",
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    inference_errors: Literal["protocol", "legacy"] = Field(
        default="protocol",
        description='Errors on /v1/ and /v2/: the protocols\' {"error": "<message>"} or, '
        "deprecated, the object shape of earlier versions.",
    )
    watch: bool = Field(default=True, description="Reload routes.yaml when the file changes.")
    admin_token: str | None = Field(default=None, repr=False)
    grpc_port: int | None = Field(
        default=None, description="Serve the gRPC frontends on this port (off unless set)."
    )
    admin_port: int | None = Field(
        default=None, description="Serve the admin API only on this port (same host)."
    )
    console: bool = Field(
        default=True,
        description="Serve the web console at /console (where the admin API is served).",
    )
    console_session_ttl: float = Field(
        default=8 * 3600.0,
        gt=0,
        description="Seconds a console sign-in lasts (its session is kept in the store).",
    )
    console_oidc_issuer: str | None = Field(
        default=None,
        description="Console sign-in with OIDC (authorization code + PKCE) at this issuer, one "
        "the auth section trusts; its access token must carry the admin scope.",
    )
    console_oidc_client_id: str | None = Field(
        default=None, description="The console's client id at the OIDC issuer."
    )
    console_oidc_client_secret: str | None = Field(
        default=None, repr=False, description="Its secret, for a confidential client."
    )
    console_oidc_scope: str = Field(
        default="openid admin", description="The scopes the console's OIDC sign-in asks for."
    )
    console_oidc_resource: str | None = Field(
        default=None,
        description="The resource (RFC 8707) the access token is for: the auth section's "
        "audience, when the issuer needs one.",
    )
    secret: str | None = Field(
        default=None,
        repr=False,
        description="Hashes API keys, signs gateway tokens; the same on every replica.",
    )
    redis_url: str | None = Field(default=None, repr=False)
    redis_prefix: str = Field(default="gw:", description="Prefix of every key in Redis.")
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Proxies whose X-Forwarded-For is trusted (comma list, '*' for all).",
    )
    job_workers: bool = Field(
        default=True,
        description="Run async-job workers in every serve process (gateway worker always does).",
    )
    pool_size: int = Field(
        default=512,
        ge=1,
        description="Max upstream connections per worker, for each of its two clients "
        "(buffered requests; streamed passthrough and readiness probes).",
    )
    key_cache_size: int = Field(
        default=100_000,
        ge=1,
        description="API-key records (and tenants) cached per worker; an LRU past this size.",
    )
    usage_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between writes of the per-tenant usage counters to the store "
        "(one batched call per worker; the usage API is this far behind at most).",
    )
    metrics_max_tenants: int = Field(
        default=100,
        ge=0,
        description="Tenants with a label of their own in gateway_tenant_requests_total (the "
        "first seen by each worker); later ones are counted as 'other'.",
    )
    metrics_max_models: int = Field(
        default=DEFAULT_MAX_MODELS,
        ge=0,
        description="Models with model and version labels of their own in the metrics (the "
        "first seen by each worker); later ones are counted as model and version 'other'.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Max bytes of a request's header fields (431)."
    )
    max_headers: int = Field(default=100, ge=1, description="Max header fields a request (431).")
    max_request_line: int = Field(
        default=8 * 1024, ge=256, description="Max bytes of a request's target (414)."
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to read a request's head (408 after)."
    )
    tls_cert: Path | None = Field(
        default=None, description="Serve HTTPS with this PEM certificate chain (reloaded)."
    )
    tls_key: Path | None = Field(default=None, description="The PEM key of tls_cert.")
    tls_client_ca: Path | None = Field(
        default=None, description="Verify client certificates against this CA bundle (mTLS)."
    )
    tls_client_cert: Literal["required", "optional"] = Field(
        default="required", description="With tls_client_ca: a client certificate is required."
    )

    series_step_seconds: int = Field(
        default=5, ge=1, le=60, description="Live series (/admin/series): seconds per point."
    )
    series_window_seconds: int = Field(
        default=900,
        ge=60,
        le=24 * 3600,
        description="Live series: how far back the points go (at least 2 steps, at most 3600).",
    )

    webhook_allow_http: bool = Field(
        default=False, description="Allow plain http:// callback URLs (https always is)."
    )
    webhook_allow_networks: str = Field(
        default="",
        description="CIDRs (comma-separated) that callbacks may reach although private, "
        "loopback or link-local, e.g. 10.1.0.0/16,127.0.0.0/8.",
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, description="Attempts of a webhook before it is dead."
    )
    webhook_backoff: float = Field(
        default=5.0, gt=0, description="Seconds before a webhook's second attempt (doubling)."
    )
    webhook_max_backoff: float = Field(
        default=3600.0, gt=0, description="Longest wait between two attempts of a webhook."
    )
    webhook_timeout: float = Field(
        default=15.0, gt=0, description="Seconds one webhook attempt may take."
    )
    webhook_concurrency: int = Field(
        default=16, ge=1, description="Webhook attempts in flight per worker process."
    )
    webhook_poll: float = Field(
        default=1.0,
        gt=0,
        description="An idle deliverer sleeps until the next webhook is due; at most "
        "max(this, lease / 4) seconds between its own looks.",
    )

    @field_validator("webhook_allow_networks")
    @classmethod
    def _check_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("tls_key needs tls_cert")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (client certificates) needs tls_cert")
        return self

    @model_validator(mode="after")
    def _check_series(self) -> Settings:
        step, window = self.series_step_seconds, self.series_window_seconds
        if window < 2 * step or window // step > MAX_STEPS:
            raise ValueError(
                f"series_window_seconds ({window}) must hold from 2 to {MAX_STEPS} steps of "
                f"series_step_seconds ({step})"
            )
        return self

    def uvicorn_options(self) -> dict[str, object]:
        """The server options ``gateway serve`` (and the tests) run uvicorn with."""
        return {
            "http": "gateway.edge.server:GatewayProtocol",  # the limits of gateway.edge.server
            "host": self.host,
            "port": self.port,
            "log_level": self.log_level,
            "log_config": log_config(self.log_level, self.log_format, self.log_queue_size),
            "access_log": False,
            "server_header": False,
            "proxy_headers": self.forwarded_allow_ips is not None,
            "forwarded_allow_ips": self.forwarded_allow_ips,
            "lifespan": "on",
            "timeout_graceful_shutdown": 30,
        }
