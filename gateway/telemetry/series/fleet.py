"""The fleet's series: every replica publishes its finished steps to the store every step, and
a read merges the live replicas' steps.

:class:`FleetSeries` runs one background task per process. Just after each step ends (a tenth
of a step, at most 250 ms, later; and once at start) it drops what fell out of the window or
out of the route table, then publishes every finished step not yet published in one store call
(:meth:`~gateway.store.series.SeriesStore.series_publish`; the replica's id, a time to live of
:data:`TTL_STEPS` steps, :data:`MIN_TTL` at least) and forgets them here. A publish that
fails is retried with the next one: a step is stored under its start time, so sending it twice
never counts it twice.

:meth:`FleetSeries.read` asks the store for the steps of the range, sums each model ×
version's counts and histograms over the replicas (``wire.Totals``), leaves out what the
route table no longer serves, and lays it out (``view``). A range ends at the last step every
replica has had time to publish. With the memory store the fleet is this process.

Each publish also carries the replica's summary (``summary``, e.g. shadow traffic's running
totals, ``gateway.traffic.shadow_fleet``); :meth:`FleetSeries.summaries` reads the live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from gateway.config.model import RouteTable
from gateway.store import Store, StoreUnavailable
from gateway.telemetry.series.recorder import SeriesRecorder, Step
from gateway.telemetry.series.view import SeriesView, lay_out
from gateway.telemetry.series.wire import Totals, decode_step, encode_step

logger = logging.getLogger("gateway.series")

TTL_STEPS: Final = 3
MIN_TTL: Final = 5.0
"""A replica that has not published for this many steps (and at least this many seconds) is
no longer part of the fleet."""


class FleetSeries:
    """Publishes this replica's series and reads the fleet's."""

    def __init__(
        self,
        recorder: SeriesRecorder,
        store: Store,
        replica: str,
        table: Callable[[], RouteTable],
        summary: Callable[[], str] | None = None,
    ) -> None:
        self.recorder = recorder
        self.summary = summary  # this replica's running totals of what no step holds (shadow)
        self.store = store
        self.replica = replica  # this process's id among the replicas
        self.table = table  # the route table live now
        self.step = recorder.step
        self.delay = min(0.1 * self.step, 0.25)  # how long after a step ends it is published
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="series:publish")

    async def close(self) -> None:
        """Stop publishing; the finished steps are published once more if the store answers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreUnavailable):
            await self.publish()

    async def _run(self) -> None:
        while True:
            try:
                await self.publish()
            except StoreUnavailable:
                if not self._warned:
                    logger.warning("series: the store is unavailable; steps wait here")
                self._warned = True
            except Exception:
                logger.exception("series: publishing failed")
            else:
                self._warned = False
            now = self.recorder.now()
            await asyncio.sleep(self.step - now % self.step + self.delay)

    async def publish(self) -> None:
        """Publish every finished step held here, then forget them (also a heartbeat: the
        replica stays live with no steps to send)."""
        recorder = self.recorder
        current = recorder.index(recorder.now())
        oldest = current - recorder.steps + 1
        recorder.prune(oldest, self._served())
        rows: dict[int, list[tuple[str, str, Step]]] = {}
        for model, version, step in recorder.finished(current):
            rows.setdefault(step.index, []).append((model, version, step))
        texts = {index * self.step: encode_step(self.step, found) for index, found in rows.items()}
        ttl = max(TTL_STEPS * self.step, MIN_TTL)
        summary = self.summary() if self.summary is not None else ""
        await self.store.series_publish(
            self.replica, texts, keep_from=oldest * self.step, ttl=ttl, summary=summary
        )
        recorder.forget(current)

    async def read(
        self, model: str | None = None, version: str | None = None, minutes: int | None = None
    ) -> SeriesView:
        """The fleet's series over the last ``minutes`` (the whole window when None or more),
        of one model and/or version when given."""
        now = self.recorder.now()
        last = self.recorder.index(now - self.settled()) - 1  # the last step all published
        count = self.recorder.steps
        if minutes is not None:
            count = max(1, min(count, minutes * 60 // self.step))
        indices = range(last - count + 1, last + 1)
        published = await self.store.series_read([i * self.step for i in indices])
        served = self._served()
        merged: dict[tuple[str, str], dict[int, Totals]] = {}
        for texts in published.values():
            for start, text in texts.items():
                for name, ver, totals in decode_step(text, self.step):
                    if (model is not None and name != model) or (
                        version is not None and ver != version
                    ):
                        continue
                    if not served(name, ver):
                        continue
                    cells = merged.setdefault((name, ver), {})
                    cell = cells.get(start // self.step)
                    if cell is None:
                        cells[start // self.step] = totals
                    else:
                        cell.add(totals)
        return lay_out(self.step, now, indices, merged, len(published))

    async def summaries(self) -> dict[str, str]:
        """The live replicas' last summaries (replica → text), as of their last publish."""
        return await self.store.series_summaries()

    def settled(self) -> float:
        """Seconds after a step's end when every replica has published it: its publish delay,
        and as long again for the store round trip."""
        return 3 * self.delay

    def _served(self) -> Callable[[str, str], bool]:
        models = self.table().models

        def served(model: str, version: str) -> bool:
            spec = models.get(model)
            return spec is not None and (not version or version in spec.versions)

        return served
