"""The console's routes: its pages, its files, sign-in and sign-out, and the session's CSRF
token for its scripts.

The console is a set of static pages whose scripts call the admin API (``/admin/...``) with the
session cookie: it adds no second path to the gateway's state. It is served where the admin
API is: only on ``GATEWAY_ADMIN_PORT`` when one is set (404 on the public port), and not at all
with ``GATEWAY_CONSOLE=false``.

================================  ==============================================================
``GET /console``                  to the overview (or the sign-in page)
``GET /console/login``            the sign-in form (the admin token)
``POST /console/login``           form ``token=``: a session cookie and on to the overview; a
                                  wrong token back to the form (``?failed=1``), never echoed
``GET /console/login/options``    ``{"token", "oidc"}``: the sign-ins this gateway offers
``GET /console/oidc/login``        OIDC sign-in: to the issuer (``gateway.console.oidc``)
``GET /console/oidc/callback``     back from the issuer: a session, or the form again
                                  (``?failed=oidc``; the reason is logged)
``POST /console/logout``          ends the session everywhere (CSRF token required)
``GET /console/session``          ``{"actor", "csrf_token", "expires_at"}``; 401 without one
``GET /console/{page}``           a page (``PAGES``); to the sign-in page without a session
``GET /console/static/{path}``    the console's scripts, styles and vendored chart library
================================  ==============================================================
"""

from __future__ import annotations

import hmac
import logging
from typing import Final
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.console.oidc import (
    OIDCSignIn,
    SignInRefused,
    clear_flow_cookie,
    flow_binding,
    flow_cookie,
)
from gateway.console.security import require_csrf, require_same_origin, security_headers
from gateway.console.session import ConsoleSession, clear_cookie, cookie_value, set_cookie
from gateway.console.static import Assets
from gateway.edge.http import Exchange, Route
from gateway.errors import BadRequest, NotFound, Unauthorized
from gateway.headers import Headers
from gateway.state import State

logger = logging.getLogger("gateway.console")

PAGES: Final = {
    "overview": "Overview",
    "rollouts": "Rollouts",
    "shadow": "Shadow traffic",
    "tenants": "Tenants and keys",
    "usage": "Usage",
    "cache": "Cache",
    "config": "Config",
    "jobs": "Jobs",
    "audit": "Audit log",
}
"""Each page's name (its path and script, ``static/js/<name>.js``) and title: one shell,
``static/page.html``, filled with both."""
_MAX_FORM: Final = 8 * 1024


class ConsoleHTTP:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.settings = state.settings
        self.access = access
        self.sessions = access.sessions
        self.assets = Assets()
        self.oidc = OIDCSignIn(state)

    def routes(self) -> list[Route]:
        return [
            Route("/console", self.home, ("GET",)),
            Route("/console/", self.home, ("GET",)),
            Route("/console/login", self.login_page, ("GET",)),
            Route("/console/login", self.login, ("POST",)),
            Route("/console/login/options", self.login_options, ("GET",)),
            Route("/console/oidc/login", self.oidc_login, ("GET",)),
            Route("/console/oidc/callback", self.oidc_callback, ("GET",)),
            Route("/console/logout", self.logout, ("POST",)),
            Route("/console/session", self.session, ("GET",)),
            Route("/console/static/{path:path}", self.static, ("GET",)),
            Route("/console/{page}", self.page, ("GET",)),
        ]

    def _reachable(self, request: Request) -> None:
        """404 where the console is not served (off, or not the admin port)."""
        settings = self.settings
        server = request.scope.get("server")
        port = settings.admin_port
        if not settings.console or (port is not None and (server is None or server[1] != port)):
            raise NotFound(f"no route for {request.url.path}")

    async def _session(self, request: Request) -> ConsoleSession | None:
        return await self.sessions.find(cookie_value(Headers(request.scope["headers"])))

    async def home(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        signed_in = await self._session(request) is not None
        return _redirect("/console/overview" if signed_in else "/console/login")

    async def page(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        name = request.path_params["page"]
        if name not in PAGES:
            raise NotFound(f"no console page {name!r}")
        if await self._session(request) is None:
            return _redirect("/console/login")
        shell = await self.assets.get("page.html")
        html = shell.content.decode().format(page=name, title=PAGES[name])
        return Response(html, media_type=shell.media_type, headers=security_headers(page=True))

    async def login_page(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        return await self._file("login.html", page=True)

    async def login(self, request: Request, exchange: Exchange) -> Response:
        """Sign in with the admin token from the form; the token is never logged or echoed."""
        self._reachable(request)
        headers = Headers(request.scope["headers"])
        require_same_origin(headers)  # no sign-in forced on a browser by another site
        token = (await _form(request)).get("token", [""])[0]
        expected = self.settings.admin_token
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            logger.warning("console sign-in refused", extra={"request_id": exchange.request_id})
            return _redirect("/console/login?failed=1")
        value, session = await self.sessions.open("admin-token", with_admin_token=True)
        actor = f"console:{session.actor}"
        await self.access.audit(exchange.request_id, actor, "console.login", "console")
        response = _redirect("/console/overview")
        tls = request.url.scheme == "https"
        response.headers["Set-Cookie"] = set_cookie(value, self.sessions.ttl, tls=tls)
        return response

    async def login_options(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        body = {"token": bool(self.settings.admin_token), "oidc": self.oidc.enabled}
        return JSONResponse(body, headers=security_headers(page=True))

    async def oidc_login(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        if not self.oidc.enabled:
            raise NotFound("OIDC sign-in is not configured (GATEWAY_CONSOLE_OIDC_ISSUER)")
        tls = request.url.scheme == "https"
        callback = f"{request.url.scheme}://{request.url.netloc}/console/oidc/callback"
        try:
            location, binding = await self.oidc.begin(callback)
        except SignInRefused as exc:
            logger.warning(
                "console OIDC sign-in failed",
                extra={"request_id": exchange.request_id, "reason": str(exc)},
            )
            return _redirect("/console/login?failed=oidc")
        response = _redirect(location)
        response.headers["Set-Cookie"] = flow_cookie(binding, tls=tls)
        return response

    async def oidc_callback(self, request: Request, exchange: Exchange) -> Response:
        """Back from the issuer. A 200 page that moves on by itself, not a redirect: the
        browser sends a SameSite=Strict cookie only on a navigation this site started."""
        self._reachable(request)
        if not self.oidc.enabled:
            raise NotFound("OIDC sign-in is not configured (GATEWAY_CONSOLE_OIDC_ISSUER)")
        tls = request.url.scheme == "https"
        query = request.query_params
        binding = flow_binding(Headers(request.scope["headers"]))
        try:
            if "error" in query:
                raise SignInRefused(f"the issuer answered {query['error'][:64]!r}")
            subject = await self.oidc.finish(query.get("state", ""), query.get("code", ""), binding)
        except SignInRefused as exc:
            logger.warning(
                "console OIDC sign-in refused",
                extra={"request_id": exchange.request_id, "reason": str(exc)},
            )
            response = _redirect("/console/login?failed=oidc")
            response.headers["Set-Cookie"] = clear_flow_cookie(tls=tls)
            return response
        value, session = await self.sessions.open(f"oidc:{subject}", with_admin_token=False)
        actor = f"console:{session.actor}"
        await self.access.audit(exchange.request_id, actor, "console.login", "console")
        response = await self._file("signed-in.html", page=True)
        response.headers.append("Set-Cookie", set_cookie(value, self.sessions.ttl, tls=tls))
        response.headers.append("Set-Cookie", clear_flow_cookie(tls=tls))
        return response

    async def logout(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        headers = Headers(request.scope["headers"])
        value = cookie_value(headers)
        session = await self.sessions.find(value)
        if session is not None:
            require_csrf(headers, session)
            await self.sessions.close(value)
            actor = f"console:{session.actor}"
            await self.access.audit(exchange.request_id, actor, "console.logout", "console")
        response = Response(status_code=204, headers=security_headers(page=True))
        response.headers["Set-Cookie"] = clear_cookie(tls=request.url.scheme == "https")
        return response

    async def session(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        session = await self._session(request)
        if session is None:
            raise Unauthorized("sign in to the console first")
        body = {
            "actor": session.actor,
            "csrf_token": session.csrf_token,
            "expires_at": session.expires_at,
        }
        return JSONResponse(body, headers=security_headers(page=True))

    async def static(self, request: Request, exchange: Exchange) -> Response:
        self._reachable(request)
        path = request.path_params["path"]
        if path.endswith(".html"):
            raise NotFound(f"no console file {path!r}")  # pages only through their routes
        asset = await self.assets.get(path)
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers={"ETag": asset.etag})
        return await self._file(path, page=False)

    async def _file(self, path: str, *, page: bool) -> Response:
        asset = await self.assets.get(path)
        headers = security_headers(page=page)
        if not page:
            headers["ETag"] = asset.etag
        return Response(asset.content, media_type=asset.media_type, headers=headers)


def _redirect(location: str) -> Response:
    return Response(status_code=303, headers={"Location": location, **security_headers(page=True)})


async def _form(request: Request) -> dict[str, list[str]]:
    """A small ``application/x-www-form-urlencoded`` body (400 past 8 KiB)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_FORM:
            raise BadRequest(f"the form is over {_MAX_FORM} bytes")
    try:
        return parse_qs(raw.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError as exc:  # more fields than that
        raise BadRequest("the form has too many fields") from exc
