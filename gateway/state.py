"""The typed home of what one worker shares between requests.

Built by the composition root (``gateway.app``) when the worker starts, closed when it stops,
and passed to every frontend and the admin API; nothing imports it back to find a resource.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from gateway.batches.service import BatchService
from gateway.config.live import Runtime, Services
from gateway.config.reload import Reloader
from gateway.jobs.service import JobService
from gateway.settings import Settings
from gateway.telemetry.access_log import Observer
from gateway.telemetry.series.fleet import FleetSeries
from gateway.traffic.rollout import RolloutController


@dataclass(frozen=True, slots=True)
class State:
    settings: Settings
    services: Services  # clients, store, key cache, secret, per-process traffic state
    reloader: Reloader  # the live route table and its reloads
    registry: CollectorRegistry  # this worker's metrics
    rollouts: RolloutController
    observer: Observer  # metrics and the access line of every request
    jobs: JobService  # async jobs: submit, follow, cancel (run by the job workers)
    batches: BatchService  # batch files: create, follow, results, cancel (fed by the feeders)
    series: FleetSeries  # the live series of every replica (/admin/series)

    @property
    def runtime(self) -> Runtime:
        """The route table live now (a call takes it once and keeps it)."""
        return self.reloader.current
