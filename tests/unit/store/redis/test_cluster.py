"""``redis+cluster://`` URLs: their options, and the ones refused."""

from __future__ import annotations

import pytest

from gateway.store import open_store
from gateway.store.redis.cluster import cluster_client
from gateway.store.redis.store import RedisStore


def test_cluster_url_options() -> None:
    client = cluster_client(
        "redis+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002/0?socket_timeout=3"
        "&max_connections=8"
    )
    assert sorted(client.nodes_manager.startup_nodes) == [
        "10.0.0.1:7000",
        "10.0.0.2:6379",
        "::1:7002",  # redis-py names nodes host:port, brackets or not
    ]
    kwargs = client.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("u", "p@ss")
    assert kwargs["socket_timeout"] == 3.0
    assert kwargs["socket_connect_timeout"] == 2.0  # the single-node store's default
    assert kwargs["max_connections"] == 8
    assert kwargs["decode_responses"] is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster:///", "at least one host"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster://h:x/", "bad port"),
        ("redis+cluster://h:1/?bogus=1", "unknown option"),
        ("http://h:1", "redis\\+cluster://"),
    ],
)
def test_bad_cluster_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


def test_open_store_on_a_cluster_url_with_an_ipv6_host() -> None:
    # urlsplit refuses this host list on Pythons with the CVE-2025-0938 fix (Debian's 3.11.2)
    store = open_store("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert isinstance(store, RedisStore)
