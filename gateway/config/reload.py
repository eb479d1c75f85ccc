"""Hot reload of routes.yaml: watch, SIGHUP or admin call → parse, validate, diff, swap.

An invalid file never replaces the running table: the last good one stays, and the error is
logged, shown by the status endpoint and counted in ``gateway_config_reloads_total``. The swap
is a single reference assignment, so each request finishes on the table it started with.

The file is read against the last good table: a model whose entry did not change is not read
nor validated again, and keeps what was built for it (``config/fast_path.py``,
``config/live.py``), so a reload costs what changed, not the size of the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from watchfiles import awatch

from gateway.backends.grpc_wires import load_grpc, names_grpc
from gateway.codecs import raw
from gateway.config.diff import diff_tables
from gateway.config.file import MAX_CONFIG_BYTES, LoadedConfig, load_config
from gateway.config.live import ChainFactory, Runtime, Services, build_runtime
from gateway.config.model import RouteTable
from gateway.errors import AuthSetupError, ConfigError, ConfigIssue

logger = logging.getLogger("gateway.reload")


@dataclass(slots=True)
class ReloadStatus:
    source: str
    digest: str
    loaded_at: float
    last_attempt_at: float
    last_trigger: str = "startup"
    last_ok: bool = True
    last_errors: list[str] = field(default_factory=list)
    last_changes: list[str] = field(default_factory=list)
    reloads: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ReloadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = Counter(
            "gateway_config_reloads",
            "routes.yaml reload attempts by result.",
            ["result"],
            registry=registry,
        )
        self.last_ok = Gauge(
            "gateway_config_last_reload_successful",
            "1 if the last routes.yaml reload was applied, 0 if it was rejected.",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self.loaded_at = Gauge(
            "gateway_config_loaded_timestamp_seconds",
            "When the running route table was loaded.",
            multiprocess_mode="livemax",
            registry=registry,
        )


class Reloader:
    """Owns the current :class:`Runtime` and replaces it whole when routes.yaml changes."""

    def __init__(
        self,
        path: Path,
        services: Services,
        registry: CollectorRegistry,
        chains: ChainFactory,
        max_bytes: int = MAX_CONFIG_BYTES,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.services = services
        self.chains = chains
        self.metrics = ReloadMetrics(registry)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self.current: Runtime
        self.status: ReloadStatus

    async def start(self) -> None:
        """Load the first table; an invalid file here is fatal (raises ConfigError)."""
        loaded = await asyncio.to_thread(_load, self.path, self.max_bytes, None)
        try:
            self.current, _ = build_runtime(loaded, self.services, None, self.chains)
        except AuthSetupError as exc:
            raise ConfigError(loaded.source, [ConfigIssue("auth", None, str(exc))]) from exc
        now = time.time()
        self.status = ReloadStatus(loaded.source, loaded.digest, now, now)
        self.metrics.last_ok.set(1)
        self.metrics.loaded_at.set(now)

    async def reload(self, trigger: str) -> ReloadStatus:
        async with self._lock:
            self.status.last_attempt_at = time.time()
            self.status.last_trigger = trigger
            try:
                loaded = await asyncio.to_thread(
                    _load, self.path, self.max_bytes, self.current.loaded
                )
                if loaded.digest == self.status.digest:
                    self._accepted("unchanged")
                    return self.status
                changes = diff_tables(self.current.table, loaded.table)
                runtime, retired = build_runtime(loaded, self.services, self.current, self.chains)
            except AuthSetupError as exc:
                issue = ConfigIssue("auth", None, str(exc))
                return self._rejected(trigger, ConfigError(str(self.path), [issue]))
            except ConfigError as exc:
                return self._rejected(trigger, exc)
            except Exception as exc:
                logger.exception("routes.yaml reload failed unexpectedly")
                issue = ConfigIssue("", None, f"reload failed: {type(exc).__name__}: {exc}")
                return self._rejected(trigger, ConfigError(str(self.path), [issue]))
            self.current = runtime  # the atomic swap
            for backend in retired:
                try:
                    await backend.pool.close()
                except Exception:  # the new table is live; a pool that fails to close is logged
                    logger.exception("closing a retired backend pool failed")
            self.status.digest, self.status.loaded_at = loaded.digest, time.time()
            self.status.last_changes, self.status.reloads = changes, self.status.reloads + 1
            self._accepted("success")
            self.metrics.loaded_at.set(self.status.loaded_at)
            logger.info("routes.yaml reloaded", extra={"trigger": trigger, "changes": changes})
            return self.status

    def _accepted(self, result: str) -> None:
        self.status.last_ok, self.status.last_errors = True, []
        self.metrics.reloads.labels(result).inc()
        self.metrics.last_ok.set(1)

    def _rejected(self, trigger: str, exc: ConfigError) -> ReloadStatus:
        errors = [str(issue) for issue in exc.issues]
        logger.error(
            "routes.yaml rejected; keeping the last good table",
            extra={"trigger": trigger, "source": exc.source, "errors": errors},
        )
        self.status.last_ok, self.status.last_errors = False, errors
        self.metrics.reloads.labels("failure").inc()
        self.metrics.last_ok.set(0)
        return self.status

    def watch(self) -> None:
        """Reload when the file changes (editors' renames and Kubernetes' symlink swaps too)."""
        task = asyncio.create_task(self._watch(), name="routes-watch")
        self._tasks.add(task)

    async def _watch(self) -> None:
        # Not resolve(): in a ConfigMap mount that follows ..data into a folder the kubelet
        # deletes on the next update; the mount folder itself sees every symlink swap.
        directory = self.path.absolute().parent
        name = self.path.name
        # watchfiles runs on anyio, which imports its asyncio backend on first use: about
        # 50 ms, imported here off the loop rather than by awatch's first step on it
        with contextlib.suppress(ImportError):
            await asyncio.to_thread(importlib.import_module, "anyio._backends._asyncio")
        while not self._stop.is_set():
            try:
                async for changes in awatch(directory, stop_event=self._stop, debounce=200):
                    if any(Path(p).name in (name, "..data") for _, p in changes):
                        await self.reload("file")
            except Exception:  # the watcher itself failed (its folder gone...): start it again
                logger.exception("watching routes.yaml failed; watching again in 1 s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)

    def handle_sighup(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

    def _on_sighup(self) -> None:
        task = asyncio.create_task(self.reload("sighup"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for backend in self.current.backends.values():
            await backend.pool.close()


def _load(path: Path, max_bytes: int, previous: LoadedConfig | None) -> LoadedConfig:
    """The file read and validated, in a thread: with the gRPC wires imported there when the
    table names a gRPC backend, and numpy when serving it converts tensor values, so that
    neither building its runtime nor its first calls import them on the loop."""
    loaded = load_config(path, max_bytes, previous)
    if names_grpc(loaded.table.backends.values()):
        load_grpc()
    if not raw.loaded() and converts_tensors(loaded.table):
        raw.load()
    return loaded


def converts_tensors(table: RouteTable) -> bool:
    """Whether serving ``table`` converts tensor values with numpy whatever the callers send:
    a cache (its keys), batching (its joins), a TF Serving backend (its tensor protos), a gRPC
    backend (raw contents) or one sent binary tensor data always. (A call with binary tensor
    data of its own loads them in ``Call.inference``.)"""
    for spec in table.backends.values():
        binary = getattr(spec, "binary_data", "never")
        if spec.kind == "tfserving" or spec.protocol == "grpc" or binary == "always":
            return True
    return any(
        model.cache is not None or any(v.batching is not None for v in model.versions.values())
        for model in table.models.values()
    )
