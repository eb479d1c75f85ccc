"""Which store: :func:`open_store` picks the store from ``GATEWAY_REDIS_URL``:

``redis://[user:password@]host:port/0?max_connections=128`` (``rediss://`` for TLS)
    one Redis server (or a proxy in front of several); query-string options tune the pool.
``redis+cluster://[user:password@]host:port[,host:port...]/?max_connections=100``
    (an IPv6 host in brackets: ``[::1]:7000``; see ``redis.cluster_url``)
    a Redis Cluster: the listed nodes are only where the slot map is first read, any reachable
    one will do (list several so a node down at startup does not matter). Query-string options
    are redis-py's connection options (``socket_timeout``, ``socket_connect_timeout``,
    ``max_connections`` per node, ...). The client reads the slot map on its first command,
    once, however many requests arrive together.
none
    in memory, one process (the embedded default).
"""

from __future__ import annotations

from gateway.errors import SettingsError
from gateway.store.base import Store
from gateway.store.memory.store import MemoryStore
from gateway.store.redis.cluster_url import CLUSTER_SCHEME, url_scheme


def open_store(url: str | None, *, prefix: str = "gw:") -> Store:
    """A :class:`RedisStore` for a ``redis://``, ``rediss://`` or ``redis+cluster://`` URL
    (see the module's docstring), else a :class:`MemoryStore`. Nothing is connected yet: the
    first command connects, so this needs no event loop."""
    if not url:
        return MemoryStore()
    # not urlsplit: it refuses a cluster host list with an IPv6 host (see cluster_url)
    scheme = url_scheme(url)
    if scheme not in (CLUSTER_SCHEME, "redis", "rediss"):
        raise SettingsError(
            f"store URL: expected redis://, rediss:// or redis+cluster://, got scheme {scheme!r}"
        )
    # redis-py and the Redis store are loaded only when a URL names them: about 7 MiB per
    # worker that the embedded default does not pay (tests/unit/test_architecture.py)
    from gateway.store.redis.cluster import cluster_client
    from gateway.store.redis.store import RedisStore

    if scheme == CLUSTER_SCHEME:
        return RedisStore(cluster_client(url), prefix=prefix)
    return RedisStore.from_url(url, prefix=prefix)
