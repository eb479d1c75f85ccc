"""What keeps the console's pages and its cookie from being used by another site.

- **Headers** on every console response: a strict Content-Security-Policy (scripts, styles and
  connections from this origin only: no inline script or style, no framing, forms post only
  here), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, and
  ``Cache-Control: no-store`` on pages.
- **Same origin**: a state-changing request that carries the session cookie must come from a
  page of this origin: ``Sec-Fetch-Site: same-origin`` when the browser sends it (every
  current browser does), else an ``Origin`` whose host is the request's ``Host``.
- **CSRF token**: such a request must also carry ``X-CSRF-Token``, the token bound to its
  session (``GET /console/session`` hands it to the console's scripts).

A caller with a bearer token (the CLI, scripts) is unaffected: a browser never sends one on
its own.
"""

from __future__ import annotations

import hmac
from typing import Final
from urllib.parse import urlsplit

from gateway.console.session import ConsoleSession
from gateway.errors import Forbidden
from gateway.headers import Headers

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS: Final = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER: Final = "x-csrf-token"


def security_headers(*, page: bool) -> dict[str, str]:
    """The headers of a console response; ``page``: HTML or JSON that must not be cached."""
    headers = dict(HEADERS)
    headers["Cache-Control"] = "no-store" if page else "no-cache"
    return headers


def require_same_origin(headers: Headers) -> None:
    """403 unless the request comes from a page of this origin (see the module docstring).

    ``Sec-Fetch-Site`` decides when the browser sends it: the page's ``Referrer-Policy:
    no-referrer`` makes Chromium send ``Origin: null`` on its own form posts, so an Origin is
    only compared with ``Host`` when there is no ``Sec-Fetch-Site``."""
    site = headers.one("sec-fetch-site")
    if site is not None:
        if site != "same-origin":
            raise Forbidden(f"cross-site request refused: Sec-Fetch-Site is {site}")
        return
    origin = headers.one("origin")
    if origin is None:
        raise Forbidden("cross-site request refused: no Origin or Sec-Fetch-Site")
    host = headers.one("host")
    if origin == "null" or host is None or urlsplit(origin).netloc.lower() != host.lower():
        raise Forbidden("cross-site request refused: Origin is not this site")


def require_csrf(headers: Headers, session: ConsoleSession) -> None:
    """403 unless ``X-CSRF-Token`` is the session's token (and the request same-origin)."""
    require_same_origin(headers)
    given = headers.one(CSRF_HEADER) or ""
    if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
        raise Forbidden("missing or wrong CSRF token (X-CSRF-Token)")
