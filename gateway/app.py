"""The composition root: ``create_app(settings)`` → the ASGI application of one worker.

When the worker starts (the ASGI lifespan), :func:`open_state` builds everything it shares:
the upstream clients (one pooled aiohttp ``ClientSession`` and one h1 ``Client`` per worker),
the store, the key cache, the route table with its chains (``policies.build_chains``) and its
reloader, the rollout controller, shadow traffic, the metrics registry, the live series and
the observer. The frontends and the admin API are then bound to that
:class:`~gateway.state.State` and their routes handed to the HTTP edge. Nothing is built at
import time. Only the CLI, the demo and the tests import this module.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from gateway.admin.access import AdminAccess
from gateway.admin.api import admin_routes
from gateway.auth.keys import KeyVerifier
from gateway.backends.h1.client import Client
from gateway.batches.feeder import BatchFeeder
from gateway.batches.metrics import BatchFileMetrics
from gateway.batches.service import BatchService
from gateway.batching.metrics import BatchMetrics
from gateway.config.live import Services
from gateway.config.reload import Reloader
from gateway.console.routes import ConsoleHTTP
from gateway.edge.batches import BatchesHTTP
from gateway.edge.errors import shape_of
from gateway.edge.http import HTTPEdge, Router
from gateway.edge.jobs import JobsHTTP
from gateway.edge.oauth import OAuthHTTP
from gateway.edge.ops import OpsHTTP
from gateway.edge.passthrough import PassthroughHTTP
from gateway.edge.v1 import TFServingHTTP
from gateway.edge.v2 import KServeHTTP
from gateway.errors import SettingsError
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.service import JobService
from gateway.jobs.worker import JobWorker
from gateway.limits.limiter import LimiterMetrics
from gateway.settings import Settings
from gateway.state import State
from gateway.store import open_store
from gateway.telemetry import log_queue, loop, metrics, tracing
from gateway.telemetry.access_log import Observer
from gateway.telemetry.cardinality import ModelLabels
from gateway.telemetry.series.fleet import FleetSeries
from gateway.telemetry.series.recorder import SeriesRecorder
from gateway.telemetry.usage import TenantRequests, UsageRecorder
from gateway.traffic import shadow_fleet
from gateway.traffic.rollout import RolloutController
from gateway.traffic.shadow import ShadowWorker
from gateway.webhooks.callbacks import parse_networks
from gateway.webhooks.config import WebhookConfig
from gateway.webhooks.service import Webhooks
from policies import chain_factory

logger = logging.getLogger("gateway")


def create_app(settings: Settings, *, span_exporter: SpanExporter | None = None) -> HTTPEdge:
    """The application; ``span_exporter`` (tests) receives the spans, tracing on, instead of
    the OTLP exporter the ``OTEL_*`` environment describes."""
    if settings.config is None:
        raise SettingsError("no routes.yaml: pass --config or set GATEWAY_CONFIG")
    config = Path(settings.config)

    @contextlib.asynccontextmanager
    async def open_edge() -> AsyncIterator[Router]:
        async with open_state(settings, config, span_exporter) as state:
            if settings.inference_errors == "legacy":
                logger.warning(
                    "GATEWAY_INFERENCE_ERRORS=legacy is deprecated: the v1/v2 endpoints answer "
                    '{"error": {"code", "message"}}, which KServe v2 and TF Serving clients '
                    'cannot read; move clients to {"error": "<message>", "code": ...}'
                )
            ops = OpsHTTP(state)
            routes = [
                *KServeHTTP(state).routes(),  # first: the router tries them first
                *TFServingHTTP(state).routes(),
                *ops.routes(),
                *JobsHTTP(state).routes(),
                *BatchesHTTP(state).routes(),
                *admin_routes(state),
                *OAuthHTTP(state).routes(),
            ]
            ops.describe(routes)  # /openapi.json, generated from these routes
            routes += ConsoleHTTP(state, AdminAccess(state)).routes()  # pages: not in it
            legacy = settings.inference_errors == "legacy"
            router = Router(
                routes,
                fallback=PassthroughHTTP(state),
                observer=state.observer,
                unmatched=(lambda path: "gateway") if legacy else shape_of,
            )
            server = None
            if settings.grpc_port is not None:
                # gRPC is loaded only when its port is set (grpcio: ~10 MiB per worker)
                from gateway.edge.grpc_frontends import start as start_grpc

                server = await start_grpc(state)
            # Everything built so far lives as long as the worker: keep it out of the cyclic
            # collector's full passes, which otherwise walk it all (p99 at concurrency 16:
            # 50 ms before, 8 ms after; bench/README.md).
            gc.collect()
            gc.freeze()
            try:
                yield router
            finally:
                if server is not None:
                    await server.stop(grace=5.0)

    return HTTPEdge(open_edge)


@contextlib.asynccontextmanager
async def open_state(
    settings: Settings,
    config: Path,
    span_exporter: SpanExporter | None = None,
    *,
    workers_only: bool = False,
) -> AsyncIterator[State]:
    """Everything one worker shares, opened in order and closed in reverse; with it the job
    workers and the batch feeder (unless ``GATEWAY_JOB_WORKERS=false``; ``workers_only``:
    ``gateway worker``)."""
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(metrics.mark_process_dead)
        if span_exporter is not None or tracing.enabled(settings.tracing):
            provider = tracing.start(settings.tracing_ratio, span_exporter)
            stack.callback(tracing.stop, provider)
        connector = aiohttp.TCPConnector(
            limit=settings.pool_size, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=60
        )
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        stack.push_async_callback(session.close)
        upstream = Client(limit=settings.pool_size, keepalive_timeout=30)
        stack.push_async_callback(upstream.close)
        http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), trust_env=False)
        stack.push_async_callback(http.aclose)
        store = open_store(settings.redis_url, prefix=settings.redis_prefix)
        stack.push_async_callback(store.close)
        secret = server_secret(settings)
        keys = KeyVerifier(store, secret, cache_size=settings.key_cache_size)
        keys.start()
        stack.push_async_callback(keys.close)
        registry = CollectorRegistry()
        models = ModelLabels(settings.metrics_max_models)  # one model label cap for all metrics
        log_queue.count_drops(metrics.LogMetrics(registry).dropped)
        await stack.enter_async_context(loop.watching(registry))
        rollouts = RolloutController(store, registry, models=models)
        shadow = ShadowWorker(registry, models=models)  # shadow traffic, off the request path
        shadow.start()
        stack.push_async_callback(shadow.close)
        webhooks = Webhooks(store, secret, webhook_config(settings), registry)
        webhooks.start()
        stack.push_async_callback(webhooks.close)
        services = Services(
            session,
            http,
            store,
            keys,
            secret,
            limiter_metrics=LimiterMetrics(registry),
            pool_metrics=metrics.PoolMetrics(registry),
            batch_metrics=BatchMetrics(registry, models),
            traffic=rollouts,
            shadow=shadow,
            webhooks=webhooks,
            upstream=upstream,
        )
        chains = chain_factory(settings.max_body_bytes)
        reloader = Reloader(config, services, registry, chains, settings.max_config_bytes)
        await reloader.start()
        stack.push_async_callback(reloader.close)
        if settings.watch:
            reloader.watch()
        reloader.handle_sighup()
        rollouts.watch_health(lambda model, version: reloader.current.serving(model, version))
        await rollouts.start(lambda: reloader.current.table)
        stack.push_async_callback(rollouts.close)
        recorder = SeriesRecorder(settings.series_step_seconds, settings.series_window_seconds)
        series = FleetSeries(
            recorder,
            store,
            rollouts.holder,
            lambda: reloader.current.table,
            summary=lambda: shadow_fleet.summary(shadow),
        )
        series.start()
        stack.push_async_callback(series.close)
        usage = UsageRecorder(
            store,
            settings.usage_flush_seconds,
            TenantRequests(registry, settings.metrics_max_tenants),
        )
        usage.start()  # closed (its last flush) before the store, after the job workers
        stack.push_async_callback(usage.close)
        observer = Observer(
            metrics.RequestMetrics(registry, models), settings.access_log, rollouts, recorder, usage
        )
        job_metrics = JobMetrics(registry, models)
        jobs = JobService(store, lambda: reloader.current.table.jobs, webhooks, job_metrics)
        batch_metrics = BatchFileMetrics(registry)
        batches = BatchService(store, jobs, lambda: reloader.current.table.jobs, batch_metrics)
        if settings.job_workers or workers_only:
            worker = JobWorker(
                store, lambda: reloader.current, jobs, keys, job_metrics, observer=observer
            )
            worker.start()
            stack.push_async_callback(worker.close)
            feeder = BatchFeeder(store, jobs, lambda: reloader.current.table.jobs, batch_metrics)
            feeder.start()
            stack.push_async_callback(feeder.close)
        yield State(
            settings, services, reloader, registry, rollouts, observer, jobs, batches, series
        )


def webhook_config(settings: Settings) -> WebhookConfig:
    """How webhooks are delivered, from the ``GATEWAY_WEBHOOK_*`` settings."""
    return WebhookConfig(
        max_attempts=settings.webhook_max_attempts,
        backoff=settings.webhook_backoff,
        max_backoff=settings.webhook_max_backoff,
        timeout=settings.webhook_timeout,
        concurrency=settings.webhook_concurrency,
        poll=settings.webhook_poll,
        allow_networks=parse_networks(settings.webhook_allow_networks),
        allow_http=settings.webhook_allow_http,
    )


def server_secret(settings: Settings) -> bytes:
    """The key API keys are hashed with and tokens are signed from; shared by all replicas."""
    if settings.secret:
        return settings.secret.encode()
    if settings.redis_url:
        raise SettingsError(
            "GATEWAY_SECRET must be set when state is shared in Redis: every replica needs "
            "the same secret to check API keys and gateway tokens"
        )
    logger.warning("GATEWAY_SECRET is not set: API keys and tokens last until this process ends")
    return secrets.token_bytes(32)


def app_from_env() -> HTTPEdge:
    """Factory for ``uvicorn --factory`` (one call per worker process)."""
    return create_app(Settings())
