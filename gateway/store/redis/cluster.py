"""Redis Cluster: the client for a ``redis+cluster://`` URL (see ``gateway.store.open``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from gateway.errors import SettingsError

CLUSTER_SCHEME = "redis+cluster"


class _Cluster(RedisCluster):
    """A ``RedisCluster`` that reads the slot map before its first command, once.

    redis-py 8.1 routes a command before it initialises the client, so many first calls at
    once can corrupt connections (``'NoneType' object has no attribute 'writelines'``);
    here they all wait on the client's own initialisation lock instead. A cluster that cannot
    be reached while (re)initialising is a :class:`redis.exceptions.ConnectionError`, which
    the store maps to :class:`StoreUnavailable`, rather than a bare ``RedisClusterException``.
    """

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except rx.RedisClusterException as exc:
            raise rx.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:  # until the first initialisation, and after a topology error
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def cluster_client(
    url: str,
    *,
    socket_timeout: float = 5.0,
    connect_timeout: float = 2.0,
    retries: int = 2,
) -> RedisCluster:
    """A ``RedisCluster`` client (``decode_responses=True``) for a ``redis+cluster://`` URL,
    with the single-node store's timeouts and retries; query-string options win."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise SettingsError(f"store URL: expected {CLUSTER_SCHEME}://, got {parts.scheme!r}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = [_node(item) for item in hosts.split(",") if item.strip()]
    if not nodes:
        raise SettingsError(f"store URL: {CLUSTER_SCHEME}:// needs at least one host:port")
    if parts.path.strip("/") not in ("", "0"):
        raise SettingsError("store URL: a Redis Cluster has only database 0")
    # redis-py's own parsing of credentials and typed query options, on one of the nodes
    auth = f"{credentials}@" if credentials else ""
    options: dict[str, Any] = dict(
        parse_url(f"redis://{auth}{_hostport(*nodes[0])}/?{parts.query}")
    )
    for name in ("host", "port", "db"):
        options.pop(name, None)
    options = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries),
        **options,
        "decode_responses": True,
    }
    try:
        return _Cluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], **options)
    except TypeError as exc:
        raise SettingsError(f"store URL: unknown option for a Redis Cluster: {exc}") from exc


def _node(item: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (the port defaults to 6379)."""
    parsed = urlsplit(f"//{item.strip()}")
    try:
        port = parsed.port or 6379
    except ValueError as exc:
        raise SettingsError(f"store URL: bad port in {item!r}") from exc
    if not parsed.hostname:
        raise SettingsError(f"store URL: no host in {item!r}")
    return parsed.hostname, port


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
