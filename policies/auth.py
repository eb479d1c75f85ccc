"""Authentication and authorization: the first step of every chain.

It runs before anything touches a backend. A route table without an ``auth:`` section has no
auth step (every call is let in); with one, a call without credentials is a 401 (unless
``required: false``), bad credentials are a 401 with ``WWW-Authenticate``, and good ones
without the scope a 403. The caller is left in ``call.caller`` for every later step.

An async job's replay (``call.origin == "job"``) comes with the caller its submit
authenticated: its credentials may have expired since, so it is not authenticated again, but
its scopes are authorized again against the route table live now.
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.auth.admit import admit
from gateway.auth.authenticator import CHALLENGE, Authenticator
from gateway.call import CALL_KINDS, Call, CallKind, Next, Reply
from gateway.config.live import Runtime
from gateway.errors import GatewayError, Unauthorized


class AuthPolicy:
    name: ClassVar[str] = "auth"
    kinds: ClassVar[frozenset[CallKind]] = frozenset(CALL_KINDS)

    def __init__(self, auth: Authenticator) -> None:
        self.auth = auth

    @classmethod
    def build(cls, runtime: Runtime) -> Self | None:
        return cls(runtime.auth) if runtime.auth is not None else None

    async def __call__(self, call: Call, call_next: Next) -> Reply:
        auth = self.auth
        if call.origin == "job":
            if call.caller is not None:
                try:
                    auth.authorize(call.caller, call.required, call.model)
                except GatewayError:
                    call.auth_failure = "forbidden"
                    raise
            elif auth.config.required:
                raise Unauthorized("credentials required", headers=CHALLENGE)
            return await call_next(call)
        await admit(auth, call)
        return await call_next(call)
