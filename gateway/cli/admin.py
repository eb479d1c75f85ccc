"""``gateway tenants|keys|webhooks|audit``: the admin API from the command line.

The admin URL comes from ``--admin-url`` or ``GATEWAY_ADMIN_URL``; the token only from
``GATEWAY_ADMIN_TOKEN`` (never a flag: flags end up in shell history and process lists).
Replies are printed as JSON. Rotation sends an ``Idempotency-Key`` and retries with the same one
when the connection fails, so a retried rotation never mints a second key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Any

import httpx

_RETRIES = 3


def common_options() -> argparse.ArgumentParser:
    """The options every admin subcommand takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--admin-url",
        default=os.environ.get("GATEWAY_ADMIN_URL", "http://127.0.0.1:8080"),
        help="the gateway's admin API (env GATEWAY_ADMIN_URL)",
    )
    return common


def add_commands(commands: Any) -> None:
    """Register the subcommands on the ``gateway`` parser's subparsers."""
    common = common_options()

    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="action", required=True
    )
    tenants.add_parser("list", parents=[common])
    for action in ("create", "update"):
        parser = tenants.add_parser(action, parents=[common])
        parser.add_argument("name")
        parser.add_argument("--plan")
        parser.add_argument("--models", help="comma-separated model globs (empty: all)")
        parser.add_argument("--scopes", help="comma-separated scopes the tenant may hold")
        parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--disabled", choices=["true", "false"])
        parser.add_argument(
            "--callback-hosts", help="comma-separated hosts for Callback-URL (*.example.com)"
        )
    for action in ("show", "delete"):
        tenants.add_parser(action, parents=[common]).add_argument("name")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", parents=[common])
    create.add_argument("tenant")
    create.add_argument("--name", default="")
    create.add_argument("--scopes", default="", help="comma-separated, e.g. predict:fraud")
    create.add_argument("--expires-in", help="e.g. 30d, 12h")
    keys.add_parser("list", parents=[common]).add_argument("tenant")
    rotate = keys.add_parser("rotate", parents=[common])
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", default="1h", help="how long the old key keeps working")
    rotate.add_argument("--idempotency-key", help="default: a fresh one per invocation")
    keys.add_parser("revoke", parents=[common]).add_argument("key_id")

    webhooks = commands.add_parser("webhooks", help="webhook secrets and dead letters")
    hooks = webhooks.add_subparsers(dest="action", required=True)
    secret = hooks.add_parser(
        "secret", parents=[common], help="create or rotate a tenant's secret (shown once)"
    )
    secret.add_argument("tenant")
    secret.add_argument("--grace", default="1h", help="how long the old secret keeps signing")
    secret.add_argument("--idempotency-key", help="default: a fresh one per invocation")
    hooks.add_parser("show", parents=[common], help="whether a tenant has a secret").add_argument(
        "tenant"
    )
    hooks.add_parser("delete-secret", parents=[common]).add_argument("tenant")
    dead = hooks.add_parser("dead", parents=[common], help="deliveries out of attempts")
    dead.add_argument("--limit", type=int, default=50)
    hooks.add_parser("retry", parents=[common], help="deliver a dead one again").add_argument("id")

    cache = commands.add_parser("cache", help="the response cache").add_subparsers(
        dest="action", required=True
    )
    purge = cache.add_parser("purge", parents=[common], help="drop cached responses")
    purge.add_argument("--model")
    purge.add_argument("--version")
    purge.add_argument("--tenant")

    audit = commands.add_parser("audit", help="show the admin audit log", parents=[common])
    audit.add_argument("--limit", type=int, default=50)


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def _tenant_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.plan is not None:
        body["plan"] = args.plan
    for field in ("models", "scopes", "callback_hosts"):
        value = _split(getattr(args, field))
        if value is not None:
            body[field] = value
    if args.meta:
        body["metadata"] = dict(item.split("=", 1) for item in args.meta if "=" in item)
    if args.disabled is not None:
        body["disabled"] = args.disabled == "true"
    return body


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
    """(method, path, JSON body, extra headers) for the parsed command."""
    command, action = args.command, getattr(args, "action", None)
    if command == "audit":
        return "GET", f"/admin/audit?limit={args.limit}", None, {}
    if command == "cache":
        fields = {"model": args.model, "version": args.version, "tenant": args.tenant}
        return "POST", "/admin/cache/purge", {k: v for k, v in fields.items() if v}, {}
    if command == "webhooks":
        return _webhooks_request(args)
    if command == "tenants":
        if action == "list":
            return "GET", "/admin/tenants", None, {}
        if action == "create":
            return "POST", "/admin/tenants", {"name": args.name, **_tenant_body(args)}, {}
        if action == "update":
            return "PATCH", f"/admin/tenants/{args.name}", _tenant_body(args), {}
        if action == "show":
            return "GET", f"/admin/tenants/{args.name}", None, {}
        return "DELETE", f"/admin/tenants/{args.name}", None, {}
    if action == "create":
        body: dict[str, Any] = {"name": args.name, "scopes": _split(args.scopes) or []}
        if args.expires_in:
            body["expires_in"] = args.expires_in
        idempotency = {"Idempotency-Key": str(uuid.uuid4())}
        return "POST", f"/admin/tenants/{args.tenant}/keys", body, idempotency
    if action == "list":
        return "GET", f"/admin/tenants/{args.tenant}/keys", None, {}
    if action == "rotate":
        idempotency = {"Idempotency-Key": args.idempotency_key or str(uuid.uuid4())}
        return "POST", f"/admin/keys/{args.key_id}/rotate", {"grace": args.grace}, idempotency
    return "POST", f"/admin/keys/{args.key_id}/revoke", None, {}


def _webhooks_request(
    args: argparse.Namespace,
) -> tuple[str, str, dict[str, Any] | None, dict[str, str]]:
    action = args.action
    if action == "secret":
        idempotency = {"Idempotency-Key": args.idempotency_key or str(uuid.uuid4())}
        path = f"/admin/tenants/{args.tenant}/webhook-secret"
        return "POST", path, {"grace": args.grace}, idempotency
    if action == "show":
        return "GET", f"/admin/tenants/{args.tenant}/webhook-secret", None, {}
    if action == "delete-secret":
        return "DELETE", f"/admin/tenants/{args.tenant}/webhook-secret", None, {}
    if action == "dead":
        return "GET", f"/admin/webhooks/dead?limit={args.limit}", None, {}
    return "POST", f"/admin/webhooks/dead/{args.id}/retry", None, {}


def run(args: argparse.Namespace) -> int:
    method, path, body, headers = _request(args)
    return send(args.admin_url, method, path, body, headers)


def send(
    admin_url: str, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> int:
    """Call the admin API and print its JSON reply; the exit status."""
    response = call(admin_url, method, path, body, headers)
    if isinstance(response, int):
        return response
    if response.status_code == 204:
        return 0
    try:
        reply = response.json()
    except ValueError:
        reply = {"error": {"message": response.text}}
    if isinstance(reply, dict) and "key" in reply:
        print("the key is shown this once; store it now", file=sys.stderr)
    if isinstance(reply, dict) and "secret" in reply:
        print("the webhook secret is shown this once; store it now", file=sys.stderr)
    print(json.dumps(reply, indent=2))
    return 0


def call(
    admin_url: str, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
) -> httpx.Response | int:
    """The admin API's successful answer (a failed connection is retried), or the exit status
    after printing why there is none: 2 without ``GATEWAY_ADMIN_TOKEN``, 1 when the gateway
    cannot be reached or answers an error."""
    token = os.environ.get("GATEWAY_ADMIN_TOKEN")
    if not token:
        print("set GATEWAY_ADMIN_TOKEN to the gateway's admin token", file=sys.stderr)
        return 2
    headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=admin_url, timeout=10.0, trust_env=False) as client:
        for attempt in range(_RETRIES):
            try:
                response = client.request(method, path, json=body, headers=headers)
                break
            except httpx.TransportError as exc:
                if attempt == _RETRIES - 1:
                    print(f"cannot reach {admin_url}: {exc}", file=sys.stderr)
                    return 1
    if response.status_code >= 400:
        try:
            reply = response.json()
        except ValueError:
            reply = {"error": {"message": response.text}}
        error = reply.get("error", {}) if isinstance(reply, dict) else {}
        message = error.get("message", response.text) if isinstance(error, dict) else error
        print(f"error {response.status_code}: {message}", file=sys.stderr)
        return 1
    return response
