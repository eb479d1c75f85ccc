"""Where a job's ``Callback-URL`` goes: the extension point webhook delivery plugs into."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class CallbackSink(Protocol):
    """Webhook delivery, as the jobs see it.

    ``check_callback`` is asked at submit, before the job is accepted: it returns the URL to
    store (normalised) or raises a :class:`~gateway.errors.GatewayError` for a URL it refuses
    (a host off the tenant's allow-list). ``enqueue`` is called once a job is done, with the
    event type (``job.succeeded``, ``job.failed``, ``job.cancelled``) and the job as
    ``GET /jobs/{id}`` shows it; it must not wait for the delivery (an outbox), and returns
    the delivery's id.
    """

    async def check_callback(self, tenant: str | None, url: str) -> str: ...

    async def enqueue(
        self, tenant: str, url: str, event_type: str, data: Mapping[str, object]
    ) -> str: ...
