"""``parse_cluster_url``: the host list of a ``redis+cluster://`` URL, parsed without
``urlsplit`` (which refuses ``[v6]`` after a comma on Pythons with the CVE-2025-0938 fix)."""

from __future__ import annotations

import pytest

from gateway.errors import SettingsError
from gateway.store.redis.cluster_url import ClusterURL, parse_cluster_url, url_scheme

SECRET = "s3cr/et?#@%x"  # every character that must be percent-encoded, and a '%'
ENCODED = "s3cr%2Fet%3F%23%40%25x"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://h", ClusterURL((("h", 6379),))),
        ("redis+cluster://h:7000/", ClusterURL((("h", 7000),))),
        ("REDIS+CLUSTER://Node-1.Example:7000/0", ClusterURL((("node-1.example", 7000),))),
        (
            "redis+cluster://u:p@10.0.0.1:7000,10.0.0.2,[::1]:7002",
            ClusterURL((("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)), "u", "p"),
        ),
        ("redis+cluster://[::1]", ClusterURL((("::1", 6379),))),
        ("redis+cluster://[2001:DB8::7]:1", ClusterURL((("2001:db8::7", 1),))),
        ("redis+cluster://[fe80::1%25eth0]:7000", ClusterURL((("fe80::1%eth0", 7000),))),
        ("redis+cluster://a:1, b:2 ,,c", ClusterURL((("a", 1), ("b", 2), ("c", 6379)))),
        ("redis+cluster://redis_0:65535", ClusterURL((("redis_0", 65535),))),
        # the password: '@' left bare before the hosts (the last '@' ends it), and percent-coded
        ("redis+cluster://u:p@ss@h", ClusterURL((("h", 6379),), "u", "p@ss")),
        (f"redis+cluster://u%3Ax:{ENCODED}@h", ClusterURL((("h", 6379),), "u:x", SECRET)),
        ("redis+cluster://:pw@h", ClusterURL((("h", 6379),), None, "pw")),
        ("redis+cluster://name@h", ClusterURL((("h", 6379),), "name", None)),
        (
            "redis+cluster://h/?socket_timeout=3&max_connections=8",
            ClusterURL((("h", 6379),), query="socket_timeout=3&max_connections=8"),
        ),
        ("redis+cluster://h?a=1#frag", ClusterURL((("h", 6379),), query="a=1")),
    ],
)
def test_cluster_urls(url: str, expected: ClusterURL) -> None:
    parsed = parse_cluster_url(url)
    assert parsed == expected
    assert parsed.password is None or parsed.password not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h", "expected redis\\+cluster://, got scheme 'redis'"),
        ("h:7000,h2", "got no scheme"),
        ("redis+cluster://", "at least one host"),
        ("redis+cluster://u:p@/", "at least one host"),
        ("redis+cluster://,,", "at least one host"),
        ("redis+cluster://h:1/2", "only database 0, not '2'"),
        ("redis+cluster://a:1,h:x", "bad port in 'h:x'"),
        ("redis+cluster://h:0", "bad port in 'h:0'"),
        ("redis+cluster://h:65536", "bad port in 'h:65536'"),
        ("redis+cluster://h:", "bad port in 'h:'"),
        ("redis+cluster://h:-1", "bad port in 'h:-1'"),
        ("redis+cluster://h:٣", "bad port"),  # a digit, but not an ASCII one
        ("redis+cluster://a,:7000", "no host in ':7000'"),
        ("redis+cluster://[]:7000", "no host in '\\[\\]:7000'"),
        ("redis+cluster://[::1", "no closing '\\]' in '\\[::1'"),
        ("redis+cluster://[::1]7000", "expected ':port' after '\\]'"),
        ("redis+cluster://[::1]:x", "bad port in '\\[::1\\]:x'"),
        ("redis+cluster://[10.0.0.1]:7000", "bad IPv6 address"),
        ("redis+cluster://[not-v6]", "bad IPv6 address"),
        ("redis+cluster://[fe80::1%25]", "empty IPv6 zone"),
        ("redis+cluster://::1:7000", "IPv6 address goes in brackets"),
        ("redis+cluster://h[1]:7000", "a '\\[' must open the host"),
        ("redis+cluster://bad host:1", "bad host name in 'bad host:1'"),
        ("redis+cluster://-h:1", "bad host name"),
    ],
)
def test_bad_cluster_urls_name_the_bad_part(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_cluster_url(url)


@pytest.mark.parametrize(
    "url",
    [
        f"redis+cluster://u:{SECRET}@h:7000",  # '/', '?', '#' end the host list early
        f"redis+cluster://u:{ENCODED}@h:x",  # a bad port in a URL with a password
        f"redis+cluster://u:{ENCODED}@h/3",
        f"redis+cluster://u:{ENCODED}@[::1",
    ],
)
def test_errors_never_echo_the_password(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_cluster_url(url)
    for part in ("s3cr", ENCODED, SECRET):
        assert part not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("redis+cluster://u:p@10.0.0.1:7000,[::1]:7002", "redis+cluster"),
        ("Rediss://h", "rediss"),
        ("h:6379", ""),
        ("u:p@h://x", ""),
        ("", ""),
    ],
)
def test_url_scheme(url: str, scheme: str) -> None:
    assert url_scheme(url) == scheme
