"""The routes curve's model server: one nginx serving many models, counting the readiness
probes it receives.

KServe v2 over HTTP for any model name (version 1): server health, a model's readiness,
metadata (``bench.systems.METADATA``: ``INPUT0`` FP32 [-1, 4]) and inference
(``bench.systems.REPLY``), and the model repository index (``POST /v2/repository/index``,
Triton's and MLServer's bulk readiness) listing the models of the current run as ready. An
access log of the readiness probes only: every request whose path ends in ``/ready`` (server
or model readiness) or is the repository index, one line each with nginx's own clock
(``$msec``), so the probes one replica received over any window are counted from the log.
Loopback only, like every process of the curves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import systems
from bench.curves.common import NGINX
from bench.procs import Processes

# the paths counted as readiness probes (an nginx regex over $request_uri)
PROBE = r"~(/ready|/v2/repository/index)(\?.*)?$"
_ANY_MODEL = "^/v2/models/[^/]+(/versions/[^/]+)?"


@dataclass(frozen=True)
class ModelServer:
    url: str
    log: Path
    folder: Path

    def serve(self, names: Sequence[str]) -> None:
        """List ``names`` (version 1, ready) in the repository index from now on."""
        index = [{"name": n, "version": "1", "state": "READY", "reason": ""} for n in names]
        path = self.folder / "index.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(index))
        os.replace(temporary, path)  # nginx opens the file per request: the next one sees it

    def times(self) -> list[float]:
        """When each probe so far was answered (unix seconds, nginx's clock)."""
        if not self.log.exists():
            return []
        return [float(line.split(" ", 1)[0]) for line in self.log.read_text().splitlines()]

    def per_second(self, start: float, end: float) -> float:
        """Probes answered per second from ``start`` to ``end`` (unix seconds)."""
        if end <= start:
            return 0.0
        return sum(1 for t in self.times() if start <= t < end) / (end - start)


def start(procs: Processes, cpus: Sequence[int]) -> ModelServer:
    """The model server, on loopback, logging its readiness probes."""
    folder = procs.workdir / "models"
    folder.mkdir()
    log = procs.workdir / "probes.log"
    http = (
        "log_format probe '$msec $request_method $request_uri';\n"
        f'  map $request_uri $probe {{ "{PROBE}" 1; default 0; }}'
    )
    # A POST to a static file is a 405 in nginx: the index is that 405 turned into a 200
    # with the file (error_page redirects as a GET).
    server = f"""
    client_max_body_size 64m;
    access_log {log} probe if=$probe;
    location = /v2/health/ready {{ return 200 ''; }}
    location = /v2/health/live {{ return 200 ''; }}
    location = /v2/repository/index {{ error_page 405 =200 /index.json; return 405; }}
    location = /index.json {{ internal; root {folder}; default_type application/json; }}
    location ~ {_ANY_MODEL}/ready$ {{ return 200 ''; }}
    location ~ {_ANY_MODEL}$ {{ return 200 '{systems.METADATA}'; }}
    location ~ {_ANY_MODEL}/infer$ {{ return 200 '{systems.REPLY}'; }}
"""
    _, port = systems.start_nginx(procs, NGINX, "model-server", cpus, server, http)
    found = ModelServer(f"http://127.0.0.1:{port}", log, folder)
    found.serve([])
    return found
