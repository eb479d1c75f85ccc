"""What a submit checks before a job is accepted, as a live call would at once: the caller
(authenticated and authorized exactly as the route table's auth step does), and that no quota
window of the tenant's plan is spent already (checked without spending: the run spends)."""

from __future__ import annotations

import asyncio
import logging

from gateway.auth.admit import admit as admit_call
from gateway.auth.authenticator import Caller
from gateway.call import Call
from gateway.config.live import Runtime
from gateway.errors import GatewayError, QuotaExhausted
from gateway.limits.limiter import Subject

logger = logging.getLogger("gateway.jobs")


async def admit(runtime: Runtime, call: Call) -> Caller | None:
    """The caller (None: anonymous, where the auth section allows it or there is none);
    401/403 as the live call's auth step answers. Leaves it in ``call.caller``."""
    auth = runtime.auth
    if auth is None:
        return None
    return await admit_call(auth, call)


async def check_quota(runtime: Runtime, caller: Caller | None, model: str) -> None:
    """429 when a quota window of the caller's plan has nothing left. Nothing is spent; a
    store that does not answer lets the job in (its run checks the limits again)."""
    if caller is None:
        return
    principal, tenant = caller.principal, caller.tenant
    subject = Subject(
        tenant=principal.tenant,
        plan=tenant.plan if tenant is not None else None,
        key_id=principal.subject if principal.via == "api_key" else None,
        client_ip=None,
        model=model,
    )
    limiter = runtime.limiter
    windows = [limit for limit in limiter.limits_for(subject) if limit.kind == "window"]
    if not windows:
        return
    try:
        async with asyncio.timeout(limiter.config.store_timeout):
            verdict, _ = await limiter.store.take(windows, cost=0.0)
    except (TimeoutError, GatewayError) as exc:
        logger.warning("job submit: quota not checked: %s", exc)
        return
    spent = [state for state in verdict.states if state.remaining < 1]
    if spent:
        names = ", ".join(sorted(state.name for state in spent))
        wait = max(state.reset for state in spent)
        raise QuotaExhausted(
            f"quota exhausted ({names}); it resets in {wait:.0f}s",
            headers={"Retry-After": str(max(1, int(wait) + 1))},
        )
