"""Parsing a ``redis+cluster://`` URL by hand.

``urllib.parse.urlsplit`` refuses a host list such as ``10.0.0.1:7000,[::1]:7002`` with
"Invalid IPv6 URL" wherever the fix for CVE-2025-0938 is in (CPython 3.12.9+, 3.13.2+ and
Debian's 3.11.2, which backports it): it allows no data before a ``[`` in the netloc. A cluster
URL is not one URL authority but a list of them, so it is split here, RFC 3986 style:

``redis+cluster://[user[:password]@]host[:port][,host[:port]...][/0][?options]``

where ``host`` is a name, an IPv4 address or a bracketed IPv6 address (``[::1]``, a zone as
``[fe80::1%25eth0]``), the port defaults to 6379, and the user and password are
percent-decoded. Error messages name the bad part and never contain the password.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from gateway.errors import SettingsError

CLUSTER_SCHEME = "redis+cluster"
DEFAULT_PORT = 6379

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# a DNS name or an IPv4 address; underscores because container names carry them
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """The parts of a ``redis+cluster://`` URL: its startup nodes (host, port), in order,
    the percent-decoded credentials (``None`` when absent) and the raw query string (redis-py's
    connection options). The password never appears in its ``repr``."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    query: str = ""


def url_scheme(url: str) -> str:
    """The scheme of ``url``, lower-cased, or ``""`` when it has none (never raises)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and _SCHEME.fullmatch(scheme) else ""


def parse_cluster_url(url: str) -> ClusterURL:
    """Split a ``redis+cluster://`` URL (module docstring); :class:`SettingsError` naming the
    bad part if it is not one."""
    scheme = url_scheme(url)
    if scheme != CLUSTER_SCHEME:
        got = f"scheme {scheme!r}" if scheme else "no scheme"
        raise SettingsError(f"store URL: expected {CLUSTER_SCHEME}://, got {got}")
    rest = url.partition("://")[2]
    # the authority ends at the first "/", "?" or "#" (RFC 3986 3.2); the rest must not hold
    # an "@", which would mean a password with one of those characters left unencoded
    end = next((i for i, char in enumerate(rest) if char in "/?#"), len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise SettingsError(
            "store URL: '@' after the host list: percent-encode '/', '?', '#' and '@' in the "
            "user name and password (as %2F, %3F, %23 and %40)"
        )
    userinfo, at, hosts = authority.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    tail = tail.partition("#")[0]
    path, _, query = tail.partition("?")
    if path.strip("/") not in ("", "0"):
        raise SettingsError(
            f"store URL: a Redis Cluster has only database 0, not {path.strip('/')!r}"
        )
    items = [item.strip() for item in hosts.split(",")]
    nodes = tuple(_node(item) for item in items if item)
    if not nodes:
        raise SettingsError(f"store URL: {CLUSTER_SCHEME}:// needs at least one host[:port]")
    return ClusterURL(nodes, username, password, query)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    """``user:password``, each percent-decoded; ``secret@`` alone is a user name, as redis-py
    reads ``redis://secret@host``."""
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None, (unquote(password) or None) if colon else None)


def _node(item: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if item.startswith("["):
        close = item.find("]")
        if close < 0:
            raise SettingsError(f"store URL: no closing ']' in {item!r}")
        host, after = item[1:close], item[close + 1 :]
        if after and not after.startswith(":"):
            raise SettingsError(f"store URL: expected ':port' after ']' in {item!r}")
        if not host:
            raise SettingsError(f"store URL: no host in {item!r}")
        host = _ipv6(host, item)
        port_text = after[1:] if after else None
    else:
        if "[" in item or "]" in item:
            raise SettingsError(f"store URL: a '[' must open the host in {item!r}")
        if item.count(":") > 1:
            raise SettingsError(
                f"store URL: an IPv6 address goes in brackets, as [::1]:6379, in {item!r}"
            )
        host, colon, port = item.partition(":")
        if not host:
            raise SettingsError(f"store URL: no host in {item!r}")
        if not _HOSTNAME.fullmatch(host):
            raise SettingsError(f"store URL: bad host name in {item!r}")
        host = host.lower()
        port_text = port if colon else None
    return host, _port(port_text, item)


def _ipv6(text: str, item: str) -> str:
    """The address in brackets, zone included (``fe80::1%25eth0`` → ``fe80::1%eth0``)."""
    address, percent, zone = unquote(text).partition("%")
    try:
        ipaddress.IPv6Address(address)
    except ValueError as exc:
        raise SettingsError(f"store URL: bad IPv6 address in {item!r}") from exc
    if percent and not zone:
        raise SettingsError(f"store URL: empty IPv6 zone in {item!r}")
    return f"{address.lower()}%{zone}" if percent else address.lower()


def _port(text: str | None, item: str) -> int:
    if text is None:
        return DEFAULT_PORT
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise SettingsError(f"store URL: bad port in {item!r} (expected 1-65535)")
    return int(text)
