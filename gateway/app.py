"""``create_app(settings)`` → the Starlette application.

The lifespan builds and closes everything shared by one worker: the aiohttp session (one pooled
``ClientSession`` per worker), the route table and its reloader, the metrics registry. Nothing
is built at import time.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import admin, admin_rollout, admin_shadow, api, metrics, oauth, tracing
from gateway.access_log import Observer
from gateway.auth.keys import KeyVerifier
from gateway.chain import Context, Next, build_chain
from gateway.dispatch import GatewayApp
from gateway.errors import GatewayError, error_response
from gateway.limits import LimiterMetrics
from gateway.passthrough import passthrough_app
from gateway.reload import Reloader
from gateway.rollout import RolloutController
from gateway.runtime import Services
from gateway.settings import Settings
from gateway.shadow import ShadowWorker
from gateway.store import open_store
from gateway.traffic import serving
from policies import POLICIES

logger = logging.getLogger("gateway")


@dataclass(slots=True)
class Gateway:
    """What one worker shares between requests; reached as ``request.app.state.gateway``."""

    settings: Settings
    reloader: Reloader
    services: Services
    registry: CollectorRegistry
    chain: Next


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    error = GatewayError(
        exc.detail, status=exc.status_code, code=codes.get(exc.status_code, "http_error")
    )
    error.headers.update(exc.headers or {})
    ctx: Context = request.state.ctx
    return error_response(error, ctx.request_id)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready once a route table is loaded. A store that does not answer is declared as degraded
    (cached keys and tokens still work; new keys and admin changes do not), not as unready:
    taking every replica out of rotation would turn a Redis blip into a full outage."""
    gateway: Gateway = request.app.state.gateway
    status = gateway.reloader.status
    store_ok = await gateway.services.store.ping()
    return JSONResponse(
        {
            "status": "ready" if store_ok else "degraded",
            "config": status.digest,
            "last_reload_ok": status.last_ok,
            "store": "ok" if store_ok else "unreachable",
        }
    )


async def metrics_endpoint(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    body, media_type = metrics.render(gateway.registry)
    return Response(body, media_type=media_type)


def create_app(settings: Settings, *, span_exporter: SpanExporter | None = None) -> GatewayApp:
    """The application; ``span_exporter`` (tests) receives the spans, tracing on, instead of
    the OTLP exporter the ``OTEL_*`` environment describes."""
    if settings.config is None:
        raise ValueError("no routes.yaml: pass --config or set GATEWAY_CONFIG")
    config_path = Path(settings.config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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
            http = httpx.AsyncClient(timeout=httpx.Timeout(5.0), trust_env=False)
            stack.push_async_callback(http.aclose)
            store = open_store(settings.redis_url, prefix=settings.redis_prefix)
            stack.push_async_callback(store.close)
            secret = server_secret(settings)
            keys = KeyVerifier(store, secret)
            keys.start()
            stack.push_async_callback(keys.close)
            registry = CollectorRegistry()
            rollouts = RolloutController(store, registry)
            services = Services(
                session,
                http,
                store,
                keys,
                secret,
                limiter_metrics=LimiterMetrics(registry),
                pool_metrics=metrics.PoolMetrics(registry),
                traffic=rollouts,
            )
            reloader = Reloader(config_path, services, registry)
            await reloader.start()
            stack.push_async_callback(reloader.close)
            if settings.watch:
                reloader.watch()
            reloader.handle_sighup()
            rollouts.watch_health(lambda model, version: serving(reloader.current, model, version))
            await rollouts.start(lambda: reloader.current.table)
            stack.push_async_callback(rollouts.close)
            app.state.shadow = shadow = ShadowWorker(registry)  # shadow traffic, off the path
            shadow.start()
            stack.push_async_callback(shadow.close)
            policies = [policy() for policy in POLICIES.values()]
            chain = build_chain(policies, api.run_endpoint)
            app.state.gateway = Gateway(settings, reloader, services, registry, chain)
            if isinstance(app, GatewayApp):  # metrics and the access line of every request
                observer = Observer(metrics.RequestMetrics(registry), settings.access_log, rollouts)
                app.observer = observer
            # Everything built so far lives as long as the worker: keep it out of the cyclic
            # collector's full passes, which otherwise walk it all (p99 at concurrency 16:
            # 50 ms before, 8 ms after; bench/README.md).
            gc.collect()
            gc.freeze()
            yield

    app = GatewayApp(
        routes=[
            *api.routes(),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *admin.routes(),
            *admin_shadow.routes(),
            *admin_rollout.routes(),
            *oauth.routes(),
        ],
        fast=api.fast_routes(),
        fallback=passthrough_app,
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    return app


def server_secret(settings: Settings) -> bytes:
    """The key API keys are hashed with and tokens are signed from; shared by all replicas."""
    if settings.secret:
        return settings.secret.encode()
    if settings.redis_url:
        raise ValueError(
            "GATEWAY_SECRET must be set when state is shared in Redis: every replica needs "
            "the same secret to check API keys and gateway tokens"
        )
    logger.warning("GATEWAY_SECRET is not set: API keys and tokens last until this process ends")
    return secrets.token_bytes(32)


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory`` (one call per worker process)."""
    return create_app(Settings())
