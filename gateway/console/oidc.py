"""Console sign-in with OIDC: the authorization code flow with PKCE (RFC 7636) at the issuer
``GATEWAY_CONSOLE_OIDC_ISSUER``.

1. ``begin``: a fresh ``state`` and code verifier, kept in the store for ten minutes (any
   replica may receive the callback) under an HMAC of ``state``, and bound to this browser by
   a short-lived cookie (``SameSite=Lax``: it must come back on the issuer's redirect); then
   the browser goes to the issuer's authorization endpoint (from its discovery document).
2. ``finish``: the callback's ``state`` must name a pending sign-in (used once) whose binding
   cookie is the one the browser sends; the code is exchanged for tokens with the verifier.
   The **access token** is then checked by the running auth section, as any bearer token of
   the admin API is (issuer, keys, audience, expiry), and must carry the ``admin`` scope.

Nothing of the flow (codes, tokens, verifier) is logged or shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

import httpx

from gateway.auth.scopes import allowed
from gateway.errors import GatewayError
from gateway.headers import Headers
from gateway.settings import Settings
from gateway.state import State

FLOW_COOKIE: Final = "gateway_console_oidc"
FLOW_TTL: Final = 600.0


class SignInRefused(Exception):
    """The OIDC sign-in did not give an admin (the reason is safe to log: no secrets)."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str


class OIDCSignIn:
    def __init__(self, state: State) -> None:
        self.state = state
        self.settings: Settings = state.settings
        self._endpoints: Endpoints | None = None

    @property
    def enabled(self) -> bool:
        settings = self.settings
        return bool(settings.console_oidc_issuer and settings.console_oidc_client_id)

    async def begin(self, redirect_uri: str) -> tuple[str, str]:
        """(where to send the browser, the binding cookie's value)."""
        endpoints = await self._discover()
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        binding = secrets.token_urlsafe(24)
        record = {"verifier": verifier, "binding": binding, "redirect_uri": redirect_uri}
        store = self.state.services.store
        await store.session_put(self._flow_id(state), json.dumps(record), FLOW_TTL)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.settings.console_oidc_client_id or "",
            "redirect_uri": redirect_uri,
            "scope": self.settings.console_oidc_scope,
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        if self.settings.console_oidc_resource:
            query["resource"] = self.settings.console_oidc_resource
        return f"{endpoints.authorization}?{urlencode(query)}", binding

    async def finish(self, state: str, code: str, binding: str | None) -> str:
        """The signed-in admin's subject; SignInRefused otherwise."""
        store = self.state.services.store
        flow_id = self._flow_id(state)
        text = await store.session_get(flow_id)
        if text is None:
            raise SignInRefused("no pending sign-in for this state (expired or used)")
        await store.session_delete(flow_id)  # one use
        record = json.loads(text)
        if binding is None or not hmac.compare_digest(binding, record["binding"]):
            raise SignInRefused("the sign-in was started in another browser")
        token = await self._exchange(code, record["verifier"], record["redirect_uri"])
        auth = self.state.reloader.current.auth
        if auth is None:
            raise SignInRefused("no auth section: the access token cannot be checked")
        try:
            caller = await auth.authenticate(Headers.of([("authorization", f"Bearer {token}")]))
        except GatewayError as exc:  # its message names the problem, never the token
            raise SignInRefused(f"the access token was refused: {exc}") from exc
        if caller is None:
            raise SignInRefused("the issuer gave no access token")
        principal = caller.principal
        if not allowed(principal.scopes, "admin"):
            raise SignInRefused("the access token lacks the admin scope")
        return principal.subject

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        endpoints = await self._discover()
        settings = self.settings
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": settings.console_oidc_client_id or "",
        }
        if settings.console_oidc_resource:
            form["resource"] = settings.console_oidc_resource
        secret = settings.console_oidc_client_secret
        basic = httpx.BasicAuth(settings.console_oidc_client_id or "", secret) if secret else None
        http = self.state.services.http
        try:
            if basic is None:  # a public client: PKCE alone
                response = await http.post(endpoints.token, data=form)
            else:
                response = await http.post(endpoints.token, data=form, auth=basic)
        except httpx.HTTPError as exc:
            raise SignInRefused(f"the token endpoint did not answer: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise SignInRefused(f"the token endpoint answered {response.status_code}")
        token = response.json().get("access_token")
        if not isinstance(token, str):
            raise SignInRefused("the token endpoint gave no access token")
        return token

    async def _discover(self) -> Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        issuer = (self.settings.console_oidc_issuer or "").rstrip("/")
        url = f"{issuer}/.well-known/openid-configuration"
        try:
            response = await self.state.services.http.get(url)
            document = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInRefused(f"the issuer's discovery failed: {type(exc).__name__}") from exc
        authorization = document.get("authorization_endpoint")
        token = document.get("token_endpoint")
        if not isinstance(authorization, str) or not isinstance(token, str):
            raise SignInRefused("the issuer's discovery names no authorization or token endpoint")
        self._endpoints = Endpoints(authorization, token)
        return self._endpoints

    def _flow_id(self, state: str) -> str:
        mac = hmac.new(self.state.services.secret, b"console-oidc:" + state.encode(), "sha256")
        return "oidc-" + mac.hexdigest()


def flow_cookie(value: str, *, tls: bool) -> str:
    """The cookie that binds a sign-in to the browser that started it (Lax: it must come back
    on the issuer's top-level redirect to the callback)."""
    secure = "; Secure" if tls else ""
    ttl = int(FLOW_TTL)
    return (
        f"{FLOW_COOKIE}={value}; Max-Age={ttl}; Path=/console/oidc; HttpOnly; SameSite=Lax{secure}"
    )


def clear_flow_cookie(*, tls: bool) -> str:
    secure = "; Secure" if tls else ""
    return f"{FLOW_COOKIE}=; Max-Age=0; Path=/console/oidc; HttpOnly; SameSite=Lax{secure}"


def flow_binding(headers: Headers) -> str | None:
    for line in headers.getall("cookie"):
        for part in line.split(";"):
            name, _, value = part.strip().partition("=")
            if name == FLOW_COOKIE and value:
                return value
    return None
