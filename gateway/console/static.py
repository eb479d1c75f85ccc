"""The console's files (``gateway/console/static``, package data): pages, styles, scripts and
the vendored charting library, read once off the event loop and kept in memory.

Nothing is fetched from another host: the console works offline.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath
from typing import Final

from gateway.errors import NotFound

MEDIA_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    content: bytes
    media_type: str
    etag: str


class Assets:
    """Every file under ``static/`` by its relative path (``js/common.js``)."""

    def __init__(self) -> None:
        self._files: dict[str, Asset] | None = None
        self._lock = asyncio.Lock()

    async def get(self, path: str) -> Asset:
        """The asset at ``path``; 404 for any other path."""
        files = self._files
        if files is None:
            async with self._lock:
                if self._files is None:
                    self._files = await asyncio.to_thread(read_all)
                files = self._files
        asset = files.get(path)
        if asset is None:
            raise NotFound(f"no console file {path!r}")
        return asset


def read_all() -> dict[str, Asset]:
    """Every file of the package's ``static`` folder whose type is served."""
    found: dict[str, Asset] = {}
    root = resources.files("gateway.console") / "static"
    pending = [(root, PurePosixPath())]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            name = prefix / entry.name
            if entry.is_dir():
                pending.append((entry, name))
                continue
            media_type = MEDIA_TYPES.get(PurePosixPath(entry.name).suffix)
            if media_type is not None:
                content = entry.read_bytes()
                etag = '"' + hashlib.sha256(content).hexdigest()[:20] + '"'
                found[str(name)] = Asset(content, media_type, etag)
    return found
