"""Admitting a call: authenticate its credentials and authorize its scopes, the one way both
the auth step of a chain and an async job's submit do it."""

from __future__ import annotations

from gateway.auth.authenticator import CHALLENGE, Authenticator, Caller
from gateway.call import Call
from gateway.errors import GatewayError, Unauthorized


async def admit(auth: Authenticator, call: Call) -> Caller | None:
    """The caller, left in ``call.caller`` (None: anonymous, where ``auth`` allows it).
    401 without or with bad credentials, 403 without the scope; ``call.auth_failure`` says
    why, for the metrics."""
    try:
        caller = await auth.authenticate(call.headers, call.client_cert)
    except GatewayError as exc:
        call.auth_failure = "invalid_credentials" if exc.status == 401 else exc.code
        raise
    if caller is None:
        if auth.config.required:
            call.auth_failure = "missing_credentials"
            raise Unauthorized("credentials required", headers=CHALLENGE)
        return None
    try:
        auth.authorize(caller, call.required, call.model)
    except GatewayError:
        call.auth_failure = "forbidden"
        raise
    call.caller = caller
    return caller
