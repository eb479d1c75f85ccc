"""Bounded label values: the first ``limit`` distinct values a worker process sees keep a label
of their own for its lifetime; every later one is counted under ``other``.

Prometheus keeps one series per label combination, so a label whose values grow with the
tenants or the models (10,000 models × versions × status classes × backends) would grow the
scrape without bound. Which values keep their label is decided once, cheaply and
deterministically for a process: first seen, first kept (a set lookup per call; no eviction,
so a value's series never moves between its own label and ``other``). Totals stay exact: a
value past the cap is counted under ``other``, never dropped.

:class:`LabelCap` bounds one label (``gateway_tenant_requests_total``'s tenant,
``GATEWAY_METRICS_MAX_TENANTS``); :class:`ModelLabels` bounds the model label of every metric
that has one, and its version with it (``GATEWAY_METRICS_MAX_MODELS``), one decision per worker
shared by all of them, so a model is either labelled everywhere or ``other`` everywhere.
"""

from __future__ import annotations

from typing import Final

OTHER: Final = "other"
"""The label of every value past the first ``limit`` a worker process has seen."""
DEFAULT_MAX_MODELS: Final = 1000
"""``GATEWAY_METRICS_MAX_MODELS``'s default."""


class LabelCap:
    """The first ``limit`` distinct values keep their own label, the rest are ``other``.

    A value actually named ``other`` shares its label with the overflow. With several worker
    processes each decides on its own: the fleet can show up to workers × ``limit`` values.
    """

    __slots__ = ("_kept", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: set[str] = set()

    def keeps(self, value: str) -> bool:
        """Whether ``value`` has a label of its own (taking a free place if there is one)."""
        if value in self._kept:
            return True
        if len(self._kept) < self.limit:
            self._kept.add(value)
            return True
        return False

    def label(self, value: str) -> str:
        """``value``'s label: itself, or ``other`` past the cap."""
        return value if self.keeps(value) else OTHER

    @property
    def kept(self) -> int:
        """How many values have a label of their own."""
        return len(self._kept)


class ModelLabels(LabelCap):
    """The ``model`` and ``version`` labels of every metric that has them, for one worker.

    ``""`` (no model: a request refused before a model was known, or a name the route table
    does not serve) is always a label of its own and takes no place. A model past the cap is
    ``other`` with version ``other``: its versions fold with it.
    """

    __slots__ = ()

    def keeps(self, value: str) -> bool:
        return not value or LabelCap.keeps(self, value)

    def pair(self, model: str, version: str) -> tuple[str, str]:
        """``(model, version)`` as labels: themselves, or ``("other", "other")``."""
        return (model, version) if self.keeps(model) else (OTHER, OTHER)
