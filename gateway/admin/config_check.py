"""The admin API of routes.yaml files before they are applied: the live file's text, and a
candidate file checked and compared with the live table, as ``gateway check NEW --against
LIVE`` does (``gateway.cli.check``), without touching the running gateway.

``POST /admin/config/check`` takes the file as the body (any text type, UTF-8) and answers
``{"ok", "summary", "errors", "changes", "diff"}``: ``errors`` lists every problem with its
line (as the reloader would report it), ``changes`` what the new table would change (the
``--against`` lines), ``diff`` a unified line diff against the live file.
"""

from __future__ import annotations

import asyncio
import difflib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.config.diff import diff_tables
from gateway.config.file import parse_config
from gateway.edge.http import Exchange, Route
from gateway.errors import ConfigError, PayloadTooLarge
from gateway.state import State

CANDIDATE = "<pasted>"


class ConfigCheckAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("/admin/config/source", self.source, ("GET",)),
            Route("/admin/config/check", self.check, ("POST",)),
        ]

    async def source(self, request: Request, exchange: Exchange) -> Response:
        """The routes.yaml text the live table was loaded from."""
        await self.access.require(request)
        loaded = self.state.reloader.current.loaded
        return Response(loaded.text, media_type="application/yaml; charset=utf-8")

    async def check(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        most = self.state.settings.max_config_bytes
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > most:
                raise PayloadTooLarge(f"the file is over {most} bytes (GATEWAY_MAX_CONFIG_BYTES)")
        return JSONResponse(await asyncio.to_thread(self.verdict, raw))  # YAML: off the loop

    def verdict(self, raw: bytes) -> dict[str, Any]:
        """What ``gateway check --against`` says of ``raw`` against the live table."""
        live = self.state.reloader.current.loaded
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            problem = f"line {line}: <root>: not UTF-8 text at offset {exc.start}"
            return _refused([problem])
        if not text.strip():
            return _refused(["<root>: the file is empty"])
        try:
            new = parse_config(text, CANDIDATE)
        except ConfigError as exc:
            return _refused([str(issue) for issue in exc.issues])
        table = new.table
        diff = difflib.unified_diff(
            live.text.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"live ({live.digest})",
            tofile=CANDIDATE,
        )
        summary = (
            f"ok ({len(table.backends)} backends, {len(table.models)} models, "
            f"{len(table.routes)} routes)"
        )
        return {
            "ok": True,
            "summary": summary,
            "errors": [],
            "changes": diff_tables(self.state.reloader.current.table, table),
            "diff": "".join(diff),
        }


def _refused(errors: list[str]) -> dict[str, Any]:
    count = len(errors)
    summary = f"invalid ({count} problem{'s' if count != 1 else ''})"
    return {"ok": False, "summary": summary, "errors": errors, "changes": [], "diff": ""}
