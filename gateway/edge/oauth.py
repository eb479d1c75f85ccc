"""OAuth2 client credentials for tenants: trade an API key for a short-lived gateway JWT.

``POST /oauth2/token`` (RFC 6749 §4.4): ``grant_type=client_credentials``, the key id as
``client_id`` and the key (or its secret part) as ``client_secret``, by HTTP Basic or in the
form. Errors use OAuth2's own shape (``{"error": "invalid_client"}``), as OAuth2 clients expect.
The public keys are at ``/.well-known/jwks.json``.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth.keys import PREFIX
from gateway.auth.scopes import narrow
from gateway.edge.http import Exchange, Route
from gateway.errors import BadRequest, GatewayError
from gateway.headers import Headers
from gateway.state import State

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(code: str, description: str, status: int = 400) -> Response:
    headers = dict(_NO_STORE)
    if code == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="model-gateway"'
    return JSONResponse(
        {"error": code, "error_description": description}, status_code=status, headers=headers
    )


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    authorization = Headers(request.scope["headers"]).one("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) if sep else None
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


class OAuthHTTP:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/oauth2/token", self.token, ("POST",)),
            Route("/.well-known/jwks.json", self.jwks, ("GET",)),
        ]

    async def token(self, request: Request, exchange: Exchange) -> Response:
        try:
            return await _token(self.state, request)
        except BadRequest as exc:  # e.g. two Authorization headers
            return _error("invalid_request", exc.message)

    async def jwks(self, request: Request, exchange: Exchange) -> Response:
        auth = self.state.reloader.current.auth
        keys = (
            auth.tokens.jwks() if auth is not None and auth.config.tokens.enabled else {"keys": []}
        )
        return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})


async def _token(state: State, request: Request) -> Response:
    auth = state.reloader.current.auth
    if auth is None or not auth.config.tokens.enabled:
        return _error("invalid_request", "the token endpoint is not enabled", 404)
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return _error("invalid_request", "send application/x-www-form-urlencoded")
    raw = await request.body()
    if len(raw) > 8192:
        return _error("invalid_request", "request too large")
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    if form.get("grant_type") != "client_credentials":
        return _error("unsupported_grant_type", "only client_credentials is supported")
    credentials = _client_credentials(request, form)
    if credentials is None:
        return _error("invalid_client", "client authentication required", 401)
    client_id, secret = credentials
    key = secret if secret.startswith(PREFIX) else f"{PREFIX}{client_id}_{secret}"
    try:
        record, tenant = await auth.keys.verify(key)
    except GatewayError:
        return _error("invalid_client", "unknown or invalid client", 401)
    if record.key_id != client_id:
        return _error("invalid_client", "unknown or invalid client", 401)
    scopes = narrow(record.scopes, tenant.scopes if tenant else ())
    if "scope" in form:
        requested = frozenset(form["scope"].split())
        if not requested <= scopes:
            return _error("invalid_scope", "a requested scope is not granted to this client")
        scopes = requested
    access_token, expires_in = auth.tokens.issue(record.key_id, record.tenant, scopes)
    return JSONResponse(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "scope": " ".join(sorted(scopes)),
        },
        headers=_NO_STORE,
    )
