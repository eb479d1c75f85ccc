"""``/docs``: Swagger UI over ``/openapi.json``, from the assets the ``swagger-ui-py``
package ships (no CDN: the page works offline and asks no other host for anything).

The assets are read once, off the event loop, when first asked for, and kept. Swagger UI's
validator badge (which would send the document to validator.swagger.io) is turned off.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

from gateway.errors import NotFound, Unavailable

ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
INIT = b"""window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
};
"""
PAGE = b"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>model-gateway API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""


def _folder() -> Path | None:
    """Where swagger-ui-py keeps Swagger UI's files (found without importing the package,
    whose import pulls in its web-framework handlers)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if folder.is_dir() else None


class SwaggerAssets:
    """Swagger UI's files by name, read once (off the loop) and kept in memory."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {"init.js": INIT}
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> tuple[bytes, str]:
        """(content, media type) of asset ``name``; 404 for any other name."""
        if name == "init.js":
            return INIT, "text/javascript; charset=utf-8"
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFound(f"no asset {name!r}")
        content = self._files.get(name)
        if content is None:
            async with self._lock:
                content = self._files.get(name)
                if content is None:
                    content = self._files[name] = await asyncio.to_thread(_read, name)
        return content, media_type


def _read(name: str) -> bytes:
    folder = _folder()
    if folder is None:
        raise Unavailable("Swagger UI's assets are not installed (pip install swagger-ui-py)")
    return (folder / name).read_bytes()
