"""Redis Cluster: the client for a ``redis+cluster://`` URL (see ``gateway.store.open``)."""

from __future__ import annotations

from typing import Any

from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from gateway.errors import SettingsError
from gateway.store.redis.cluster_url import CLUSTER_SCHEME, parse_cluster_url

__all__ = ["CLUSTER_SCHEME", "cluster_client"]


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
    """A ``RedisCluster`` client (``decode_responses=True``) for a ``redis+cluster://`` URL
    (parsed by :func:`parse_cluster_url`), with the single-node store's timeouts and retries;
    query-string options win."""
    parts = parse_cluster_url(url)
    # redis-py's own typed parsing of the query options, on a placeholder single-node URL; the
    # credentials are taken from our parse (redis-py's URL credentials override the query's too)
    options: dict[str, Any] = dict(parse_url(f"redis://localhost/?{parts.query}"))
    for name in ("host", "port", "db"):
        options.pop(name, None)
    if parts.username is not None:
        options["username"] = parts.username
    if parts.password is not None:
        options["password"] = parts.password
    options = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries),
        **options,
        "decode_responses": True,
    }
    try:
        return _Cluster(startup_nodes=[ClusterNode(h, p) for h, p in parts.nodes], **options)
    except TypeError as exc:
        raise SettingsError(f"store URL: unknown option for a Redis Cluster: {exc}") from exc
