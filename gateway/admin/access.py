"""Who may use the admin API, what its bodies must look like, and the audit log it writes.

Its credential is its own: ``GATEWAY_ADMIN_TOKEN`` as a bearer token, any credential the
running auth section accepts that carries the ``admin`` scope, or the console's session cookie
(``gateway.console``): with the cookie, a state-changing method must also be same-origin and
carry the session's CSRF token (``gateway.console.security``), else 403. With an admin port
set, the admin API does not exist on the public port (404). Every change is audited (who,
what, when; never a secret).
"""

from __future__ import annotations

import hmac
import time
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.requests import Request

from gateway.auth.scopes import allowed
from gateway.codecs.tensors import loads
from gateway.config.types import Strict
from gateway.console.security import SAFE_METHODS, require_csrf
from gateway.console.session import Sessions, cookie_value
from gateway.errors import BadRequest, Forbidden, InvalidBody, NotFound, Unauthorized
from gateway.headers import Headers
from gateway.state import State
from gateway.store import AuditEntry

Body = TypeVar("Body", bound=Strict)
_MAX_BODY = 1024 * 1024


class AdminAccess:
    def __init__(self, state: State) -> None:
        self.state = state
        self.sessions = console_sessions(state)

    async def require(self, request: Request) -> str:
        """The acting admin's name for the audit log; 401/403 for anyone else."""
        settings = self.state.settings
        server = request.scope.get("server")
        if settings.admin_port is not None and (server is None or server[1] != settings.admin_port):
            raise NotFound(f"no route for {request.url.path}")
        headers = Headers(request.scope["headers"])
        expected = settings.admin_token
        scheme, _, given = (headers.one("authorization") or "").partition(" ")
        token_ok = expected and hmac.compare_digest(given.strip().encode(), expected.encode())
        if scheme.lower() == "bearer" and token_ok:
            return "admin-token"
        auth = self.state.reloader.current.auth
        if auth is not None:
            caller = await auth.authenticate(headers)
            if caller is not None:
                if not allowed(caller.principal.scopes, "admin"):
                    raise Forbidden("missing scope: admin")
                return f"{caller.principal.via}:{caller.principal.subject}"
        cookie = cookie_value(headers)
        if cookie is not None and settings.console:
            session = await self.sessions.find(cookie)
            if session is not None:
                if request.method not in SAFE_METHODS:
                    require_csrf(headers, session)
                return f"console:{session.actor}"
        if not expected and auth is None:
            raise Forbidden("the admin API is disabled: set GATEWAY_ADMIN_TOKEN")
        raise Unauthorized("admin credentials required", headers={"WWW-Authenticate": "Bearer"})

    async def audit(
        self, request_id: str, actor: str, action: str, target: str, **detail: Any
    ) -> None:
        entry = AuditEntry(time.time(), actor, action, target, detail, request_id)
        await self.state.services.store.audit(entry)


def console_sessions(state: State) -> Sessions:
    """The console's sessions, over the worker's store and secret."""
    settings = state.settings
    services = state.services
    return Sessions(
        services.store, services.secret, settings.console_session_ttl, settings.admin_token
    )


async def read_body(request: Request, model: type[Body]) -> Body:
    """The JSON body validated by ``model``: 400 when it is not JSON, 422 naming each field
    that does not validate."""
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise BadRequest(f"the body is over {_MAX_BODY} bytes")
    data = loads(raw, "the body") if raw else {}  # 400s for what is not JSON, deep or not
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidBody(problems) from exc


def query_limit(request: Request, default: int, most: int) -> int:
    """``?limit=`` as a whole number from 1 to ``most`` (400 otherwise)."""
    limit = request.query_params.get("limit", str(default))
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= most:  # not "²"
        raise BadRequest(f"limit must be a whole number from 1 to {most}")
    return int(limit)
