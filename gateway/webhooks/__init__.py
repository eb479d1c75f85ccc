"""Signed webhooks (Standard Webhooks) for async jobs: callbacks checked against each tenant's
allow-list and the operator's networks, delivered in the background with retries and a
dead-letter list. The entry point is :class:`gateway.webhooks.service.Webhooks`."""
