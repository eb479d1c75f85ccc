"""Which callback URLs the gateway will call: a strict parse, the tenant's host allow-list, and
the addresses a host resolves to (no SSRF into the operator's networks).

A ``Callback-URL`` must be an absolute ``https`` URL (``http`` only where the operator allows
it) without credentials, whose host is a DNS name (IDNA) or a canonical IP literal; shorthand
IPv4 forms (``0x7f000001``, ``2130706433``, ``127.1``), which resolvers quietly accept, are
refused. Its host must be on the tenant's ``callback_hosts`` (``hooks.acme.test`` exactly, or
``*.acme.test`` for any name below ``acme.test``). Every address the host resolves to must be
public: loopback, private, shared, link-local, multicast, reserved and unspecified addresses
(IPv4-mapped, 6to4 and Teredo IPv6 unwrapped first) are refused unless a network the operator
allows (``GATEWAY_WEBHOOK_ALLOW_NETWORKS``) contains them. The check runs at submit time and
again before every attempt, and the attempt connects to the address just checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.errors import CallbackNotAllowed, InvalidCallback
from gateway.store import Tenant

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL = 2048
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")  # a label an IPv4 parser would read as a number
_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Callback:
    """A callback URL, checked and normalized."""

    url: str  # scheme://host[:port]/path?query (no fragment, no default port)
    scheme: str
    host: str  # lower-case, IDNA; an IPv6 literal without brackets
    port: int
    target: str  # path and query, as sent

    def with_address(self, address: str) -> str:
        """The URL with its host replaced by ``address`` (what the attempt connects to)."""
        host = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{host}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _PORTS[self.scheme] else f"{host}:{self.port}"


def parse_callback(text: str) -> Callback:
    """The URL normalized, or :class:`InvalidCallback` saying what is wrong with it."""
    if len(text) > MAX_URL:
        raise InvalidCallback(f"Callback-URL: longer than {MAX_URL} characters")
    if not text.isascii() or any(c.isspace() or ord(c) < 0x21 or c == "\x7f" for c in text):
        raise InvalidCallback("Callback-URL: only printable ASCII, no spaces (percent-encode)")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidCallback(f"Callback-URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _PORTS:
        raise InvalidCallback("Callback-URL: must be an absolute https:// (or http://) URL")
    if "@" in parts.netloc:
        raise InvalidCallback("Callback-URL: credentials in the URL are not allowed")
    host = _host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
    port = port if port is not None else _PORTS[scheme]
    if port == 0:
        raise InvalidCallback("Callback-URL: port 0")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if port == _PORTS[scheme] else f"{shown}:{port}"
    return Callback(f"{scheme}://{netloc}{target}", scheme, host, port, target)


def _host(host: str, *, bracketed: bool) -> str:
    if not host:
        raise InvalidCallback("Callback-URL: no host")
    if bracketed:
        if "%" in host:
            raise InvalidCallback("Callback-URL: an IPv6 zone id is not allowed")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError as exc:
            raise InvalidCallback(f"Callback-URL: bad IPv6 address {host!r}") from exc
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError as exc:
        raise InvalidCallback(f"Callback-URL: bad host name {host!r}") from exc
    labels = name.split(".")
    if _NUMERIC.match(labels[-1]):
        raise InvalidCallback(
            f"Callback-URL: {host!r} is not a canonical IPv4 address (write a.b.c.d) "
            "nor a host name"
        )
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidCallback(f"Callback-URL: bad host name {host!r}")
    return name


def host_listed(host: str, patterns: Sequence[str]) -> bool:
    """Whether ``host`` is on an allow-list of exact hosts and ``*.suffix`` patterns."""
    for pattern in patterns:
        pattern = normalize_pattern(pattern)
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and host != pattern[2:]:
                return True
        elif host == pattern:
            return True
    return False


def normalize_pattern(pattern: str) -> str:
    """An allow-list entry in the form :func:`parse_callback` gives hosts (ValueError if it
    cannot be one)."""
    text = pattern.strip().lower()
    wildcard = text.startswith("*.")
    bare = text[2:] if wildcard else text
    bracketed = bare.startswith("[") and bare.endswith("]")
    try:
        host = _host(bare[1:-1] if bracketed else bare, bracketed=bracketed or ":" in bare)
    except InvalidCallback as exc:
        raise ValueError(f"callback host {pattern!r}: not a host name or IP address") from exc
    if wildcard and (":" in host or _is_ipv4(host)):
        raise ValueError(f"callback host {pattern!r}: a wildcard needs a host name")
    return f"*.{host}" if wildcard else host


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``GATEWAY_WEBHOOK_ALLOW_NETWORKS``: CIDRs separated by commas or spaces."""
    items = [i for i in re.split(r"[,\s]+", text.strip()) if i]
    try:
        return tuple(ipaddress.ip_network(i, strict=False) for i in items)
    except ValueError as exc:
        raise ValueError(f"webhook_allow_networks: {exc}") from exc


def refused_because(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why the gateway must not connect to ``address``, or ``None`` if it may."""
    if any(address.version == net.version and address in net for net in allowed):
        return None
    inner = _embedded(address)
    if inner is not None:
        return refused_because(inner, allowed)
    for reason in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(address, f"is_{reason}"):
            return reason.replace("_", "-")
    if not address.is_global:
        return "not global"
    return None


def _embedded(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the loop's getaddrinfo, in its thread pool)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class CallbackGuard:
    """Decides whether a tenant may be called back at a URL, and at which address."""

    def __init__(
        self,
        allow_networks: Sequence[IPNetwork] = (),
        *,
        allow_http: bool = False,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allow_networks = tuple(allow_networks)
        self.allow_http = allow_http
        self._resolve = resolver

    def check_url(self, tenant: Tenant, text: str) -> Callback:
        """The parsed URL if ``tenant`` may name it (before any DNS)."""
        callback = parse_callback(text)
        if callback.scheme == "http" and not self.allow_http:
            raise CallbackNotAllowed(
                "Callback-URL: only https callbacks are allowed on this gateway"
            )
        if not host_listed(callback.host, tenant.callback_hosts):
            raise CallbackNotAllowed(
                f"Callback-URL: host {callback.host!r} is not on tenant {tenant.name!r}'s "
                "callback_hosts"
            )
        return callback

    async def addresses(self, callback: Callback) -> list[str]:
        """Every address the host resolves to, if each one is allowed (else 403)."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(callback.host)
        except ValueError:
            literal = None
        if literal is not None:
            found = [str(literal)]
        else:
            try:
                found = await self._resolve(callback.host, callback.port)
            except OSError as exc:
                raise InvalidCallback(f"Callback-URL: {callback.host!r} does not resolve") from exc
        if not found:
            raise InvalidCallback(f"Callback-URL: {callback.host!r} does not resolve")
        unique = list(dict.fromkeys(found))
        for text in unique:
            reason = refused_because(ipaddress.ip_address(text.split("%")[0]), self.allow_networks)
            if reason is not None:
                raise CallbackNotAllowed(
                    f"Callback-URL: {callback.host!r} resolves to a {reason} address, which "
                    "this gateway does not call"
                )
        return unique
