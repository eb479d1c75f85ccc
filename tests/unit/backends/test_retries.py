"""The retry budget: retries are a share of the requests, not a multiplier of them."""

from __future__ import annotations

from gateway.backends.retries import RetryBudget


def test_retry_budget_allows_a_share_of_requests() -> None:
    budget = RetryBudget(ratio=0.1, min_per_second=0)
    for _ in range(100):
        budget.record_request()
    spent = sum(budget.try_spend() for _ in range(50))
    assert spent == 10
