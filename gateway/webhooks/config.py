"""How webhooks are delivered: attempts, backoff, timeouts and which networks may be called."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.webhooks.callbacks import IPNetwork


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """Built from the ``GATEWAY_WEBHOOK_*`` settings by the composition root."""

    max_attempts: int = 8  # then the delivery is dead
    backoff: float = 5.0  # seconds before the 2nd attempt; doubles each time, with jitter
    max_backoff: float = 3600.0
    timeout: float = 15.0  # one attempt, connect to answer
    concurrency: int = 16  # attempts in flight per worker process
    # an idle worker sleeps until the earliest queued delivery is due (a delivery queued or
    # revived here wakes it), and looks on its own at most every max(poll, lease / 4)
    # seconds, for one a replica queued and died before taking
    poll: float = 1.0
    allow_networks: tuple[IPNetwork, ...] = ()  # private networks the operator allows
    allow_http: bool = False  # plain http callbacks (https always)

    @property
    def lease(self) -> float:
        """How long a taken delivery is held before another replica may take it again: well
        past one attempt's timeout, so a live taker is never doubled."""
        return 2 * self.timeout + 30.0

    @property
    def idle_look(self) -> float:
        """The longest an idle worker goes without looking at the queue."""
        return max(self.poll, self.lease / 4)
