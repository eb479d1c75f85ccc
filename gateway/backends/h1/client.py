"""``Client``: the worker's HTTP/1.1 client for buffered requests to model servers, one
:class:`~gateway.backends.h1.origin.OriginPool` per origin under one connection limit.

Built and closed with the worker's other clients (``gateway.app.open_state``); the replica
pools ask it for an origin once per replica URL and send on that.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from gateway.backends.h1.origin import OriginPool, Slots

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Client:
    """Keep-alive connections per origin; at most ``limit`` connections in use at once across
    origins (callers wait for a slot; 0: no limit), idle ones closed after
    ``keepalive_timeout`` seconds."""

    def __init__(self, limit: int = 512, keepalive_timeout: float = 30.0) -> None:
        self._slots = Slots(limit)
        self._keepalive = keepalive_timeout
        self._origins: dict[tuple[str, str, int, object, str | None], OriginPool] = {}
        self._default_tls: ssl.SSLContext | None = None
        self._unverified_tls: ssl.SSLContext | None = None

    def origin(
        self, url: str, tls: ssl.SSLContext | bool = True, server_hostname: str | None = None
    ) -> tuple[OriginPool, str]:
        """The pool of ``url``'s origin and the path ``url`` adds before a request's own
        (``""`` for a bare origin). ``tls`` and ``server_hostname`` apply to https:// only:
        ``True``, the system's CAs; a context, that context (aiohttp's ``ssl=`` and
        ``server_hostname=``)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS[scheme]
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = tls if isinstance(tls, ssl.SSLContext) else self._system_tls(tls)
        key = (scheme, host, port, context, server_hostname)
        pool = self._origins.get(key)
        if pool is None:
            shown = f"[{host}]" if ":" in host else host
            if port != _DEFAULT_PORTS[scheme]:
                shown = f"{shown}:{port}"
            pool = OriginPool(
                host, port, shown, context, server_hostname, self._slots, self._keepalive
            )
            self._origins[key] = pool
        return pool, parts.path.rstrip("/")

    async def close(self) -> None:
        """Close every connection of every origin."""
        for pool in self._origins.values():
            pool.close()
        self._origins.clear()
        await asyncio.sleep(0)  # the transports' connection_lost runs before the loop may end

    def _system_tls(self, verify: bool) -> ssl.SSLContext:
        """The system's CAs (made at the first https:// origin that asks); ``verify=False``
        (aiohttp's ``ssl=False``): no verification at all."""
        if not verify:
            if self._unverified_tls is None:
                self._unverified_tls = ssl.create_default_context()
                self._unverified_tls.check_hostname = False
                self._unverified_tls.verify_mode = ssl.CERT_NONE
            return self._unverified_tls
        if self._default_tls is None:
            self._default_tls = ssl.create_default_context()
        return self._default_tls
