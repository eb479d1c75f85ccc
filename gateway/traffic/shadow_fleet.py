"""Shadow traffic's counts over the fleet: each replica's running totals as one summary text
(published with its live series), and the live replicas' summaries summed.

Each worker process mirrors and compares its own share (``gateway.traffic.shadow``); its
:class:`~gateway.traffic.shadow.Stats` only ever grow. Every series step a replica publishes
them whole (:func:`summary`), replacing the last; ``GET /admin/shadow`` sums the live
replicas' (:func:`merge`). A replica that stops leaves the sum when its series expire, as its
Prometheus counters leave a scrape; one that restarts counts again from zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any, Final

import orjson

from gateway.traffic.shadow import ShadowWorker, Stats

_COUNTS: Final = tuple(f.name for f in fields(Stats) if f.name != "by_primary")


def summary(worker: ShadowWorker) -> str:
    """This worker's totals, per model and shadow version, as one text."""
    shown: dict[str, dict[str, dict[str, Any]]] = {}
    for (model, version), stats in worker.totals():
        counts: dict[str, Any] = {name: getattr(stats, name) for name in _COUNTS}
        counts["by_primary"] = dict(stats.by_primary)
        shown.setdefault(model, {})[version] = counts
    return orjson.dumps({"shadow": shown}).decode() if shown else ""


def merge(texts: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The replicas' summaries summed: per model, per shadow version, what ``GET
    /admin/shadow`` shows. A text that does not parse (another release's) is left out."""
    summed: dict[tuple[str, str], Stats] = {}
    for text in texts:
        if not text:
            continue
        try:
            shown = orjson.loads(text).get("shadow", {})
            for model, versions in shown.items():
                for version, counts in versions.items():
                    _add(summed.setdefault((model, version), Stats()), counts)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for (model, version), stats in sorted(summed.items()):
        result.setdefault(model, {})[version] = stats.as_json()
    return result


def _add(stats: Stats, counts: dict[str, Any]) -> None:
    for name in _COUNTS:
        setattr(stats, name, getattr(stats, name) + type(getattr(stats, name))(counts[name]))
    for version, n in counts.get("by_primary", {}).items():
        stats.by_primary[version] = stats.by_primary.get(version, 0) + int(n)
