"""Authentication and authorization: the first policy of every chain.

It runs before anything touches a backend. A route table without an ``auth:`` section lets
every call in; with one, a call without credentials is a 401 (unless ``required: false``), bad
credentials are a 401 with ``WWW-Authenticate``, and good ones without the scope a 403. The
caller's tenant and scopes are left in ``ctx`` for every later policy.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.authenticator import CHALLENGE
from gateway.chain import AUTH_FAILURE, Context, Next
from gateway.errors import GatewayError, Unauthorized


class AuthPolicy:
    async def __call__(self, request: Request, ctx: Context, call_next: Next) -> Response:
        auth = request.state.runtime.auth
        if auth is None:
            return await call_next(request, ctx)
        try:
            caller = await auth.authenticate(request.headers)
        except GatewayError as exc:
            ctx.extra[AUTH_FAILURE] = "invalid_credentials" if exc.status == 401 else exc.code
            raise
        if caller is None:
            if auth.config.required:
                ctx.extra[AUTH_FAILURE] = "missing_credentials"
                raise Unauthorized("credentials required", headers=CHALLENGE)
            return await call_next(request, ctx)
        try:
            auth.authorize(caller, ctx.required, ctx.model)
        except GatewayError:
            ctx.extra[AUTH_FAILURE] = "forbidden"
            raise
        ctx.tenant = caller.principal.tenant
        ctx.scopes = caller.principal.scopes
        ctx.extra["principal"] = caller.principal
        ctx.extra["tenant_record"] = caller.tenant
        return await call_next(request, ctx)
