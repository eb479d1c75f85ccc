"""Reading a batch file: every line is checked as a live call would be before anything of the
batch is queued (JSON, fields, a unique ``custom_id``, the model, the caller's scopes, the
body with its protocol's decoder). A bad line makes the whole file a 400 that names the
first few bad lines by number (1-based, blank lines counted, as an editor shows them).

A line::

    {"custom_id": "a1", "model": "linear", "version": "2", "protocol": "v2", "body": {...}}

``version`` is optional; ``body`` is the JSON request of the protocol (a KServe v2 ``infer``
body, or a TF Serving ``:predict`` body).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import orjson

from gateway.auth.authenticator import Caller
from gateway.batches.model import BatchLine
from gateway.codecs import v1, v2
from gateway.config.live import Runtime
from gateway.errors import BadRequest, GatewayError, InvalidBatch
from gateway.jobs.model import JobProtocol
from gateway.jobs.replay import required_scopes

SHOWN: Final = 5  # bad lines named in the 400
MAX_CUSTOM_ID: Final = 256
_FIELDS: Final = frozenset({"custom_id", "model", "version", "protocol", "body"})
_YIELD_EVERY: Final = 256  # lines checked between yields to the event loop


async def read_lines(
    body: bytes, runtime: Runtime, caller: Caller | None, max_lines: int
) -> list[BatchLine]:
    """The batch file's lines, each checked; :class:`InvalidBatch` when any is bad."""
    lines: list[BatchLine] = []
    seen: set[str] = set()
    bad: list[str] = []
    count = 0
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if number % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a 50,000-line file does not hold the loop
        if not raw.strip():
            continue
        count += 1
        if count > max_lines:
            raise InvalidBatch(
                f"the batch file has more than {max_lines} lines (jobs.max_batch_lines)"
            )
        try:
            line = _parse(raw)
            if line.custom_id in seen:
                raise BadRequest(f"custom_id {line.custom_id!r} is used by an earlier line")
            seen.add(line.custom_id)
            _check(line, runtime, caller)
        except GatewayError as exc:
            bad.append(f"line {number}: {exc.message}")
            continue
        lines.append(line)
    if bad:
        more = f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise InvalidBatch(
            f"{len(bad)} bad line{'s' if len(bad) > 1 else ''}, nothing was queued: "
            + "; ".join(bad[:SHOWN])
            + more
        )
    if not lines:
        raise InvalidBatch("the batch file has no lines")
    return lines


def _parse(raw: bytes) -> BatchLine:
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise BadRequest("a line must be a JSON object")
    unknown = sorted(set(obj) - _FIELDS)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        raise BadRequest(f"'custom_id' must be a string of 1 to {MAX_CUSTOM_ID} characters")
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string")
    version = obj.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        raise BadRequest("'version' must be a non-empty string")
    protocol: JobProtocol
    match obj.get("protocol"):
        case "v1":
            protocol = "v1"
        case "v2":
            protocol = "v2"
        case _:
            raise BadRequest("'protocol' must be 'v1' or 'v2'")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise BadRequest("'body' must be a JSON object (the protocol's request)")
    return BatchLine(custom_id, model, version, protocol, orjson.dumps(body))


def _check(line: BatchLine, runtime: Runtime, caller: Caller | None) -> None:
    """What a live call would refuse: an unknown model or version, a missing scope, a body its
    protocol's decoder rejects."""
    runtime.resolve(line.model, line.pin)
    auth = runtime.auth
    if auth is not None and caller is not None:
        auth.authorize(caller, required_scopes(line.model, line.pin), line.model)
    if line.protocol == "v1":
        v1.decode_request(line.body)
    else:
        v2.decode_request(line.body)
