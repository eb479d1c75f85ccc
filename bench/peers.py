"""Peers beside the gateway: HAProxy (a second proxy in C) and LiteLLM's proxy (a Python
gateway), both in front of the same upstream nginx.

LiteLLM is installed by the bench in its own venv (``bench/.peers/litellm-venv``, never a
project dependency; ``bench/venvs.py``) the first time a LiteLLM scenario is chosen; if that
fails, the scenarios are skipped with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.procs import BenchError, Proc, Processes, clean_env, free_port, port_open, wait_until
from bench.venvs import ToolVenv

LITELLM_REQUIREMENT = "litellm[proxy]"
LITELLM = ToolVenv("litellm-venv", (LITELLM_REQUIREMENT,))
LITELLM_VENV = LITELLM.folder
LITELLM_MODEL = "linear"
CHAT_PATH = "/v1/chat/completions"
PASSTHROUGH_PATH = "/bench-v2"  # LiteLLM's pass-through endpoint -> /v2/models/linear/infer
# The one chat request both LiteLLM and the gateway's OpenAI route get (and nginx's reply).
CHAT_BODY = '{"model":"linear","messages":[{"role":"user","content":"hello"}],"max_tokens":8}'
CHAT_REPLY = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    '"model":"linear","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},'
    '"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,'
    '"total_tokens":6}}'
)


def haproxy_config(folder: Path, port: int, upstream: str) -> str:
    """One process, one thread, HTTP/1.1 keep-alive to the upstream with connections shared
    between clients (``http-reuse always``), no logging."""
    return f"""global
  nbthread 1
  maxconn 4096
  pidfile {folder / "haproxy.pid"}
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
frontend bench
  bind 127.0.0.1:{port}
  default_backend upstream
backend upstream
  http-reuse always
  server up {upstream.removeprefix("http://")} maxconn 64
"""


def start_haproxy(
    procs: Processes, haproxy: str, cpus: Sequence[int], upstream: str
) -> tuple[Proc, str]:
    """``haproxy -db`` (foreground) with its own config folder, pinned to ``cpus``."""
    folder = procs.workdir / "haproxy"
    folder.mkdir()
    port = free_port()
    conf = folder / "haproxy.cfg"
    conf.write_text(haproxy_config(folder, port, upstream))
    proc = procs.spawn("haproxy", [haproxy, "-db", "-f", str(conf)], cpus)
    wait_until(f"haproxy on port {port}", port_open(port), proc, timeout=20)
    return proc, f"http://127.0.0.1:{port}"


def litellm_executable() -> Path | str:
    """LiteLLM's ``litellm`` command in its own venv, installed there on first use; or why
    it cannot be (a string)."""
    return LITELLM.executable("litellm")


def litellm_config(upstream: str, redis: str, master_key: str) -> str:
    """The closest to the gateway's full chain LiteLLM offers without a database: its master
    key; the deployment's rpm counted in Redis by the router (``usage-based-routing-v2``); an
    OpenAI-compatible model on the upstream nginx; and a pass-through endpoint to the v2 infer
    URL, behind the same key."""
    host, _, rest = redis.removeprefix("redis://").partition(":")
    port = rest.split("/", 1)[0]
    return f"""model_list:
  - model_name: {LITELLM_MODEL}
    litellm_params:
      model: openai/{LITELLM_MODEL}
      api_base: {upstream}/v1
      api_key: bench-upstream-key
      rpm: 100000000
      tpm: 100000000000
router_settings:
  routing_strategy: usage-based-routing-v2
  redis_host: {host}
  redis_port: {port}
  num_retries: 0
litellm_settings:
  telemetry: false
  request_timeout: 10
  set_verbose: false
  json_logs: false
general_settings:
  master_key: {master_key}
  disable_spend_logs: true
  pass_through_endpoints:
    - path: {PASSTHROUGH_PATH}
      target: {upstream}/v2/models/linear/infer
      auth: true
"""


@dataclass
class LiteLLM:
    proc: Proc
    url: str
    master_key: str


def start_litellm(
    procs: Processes, cpus: Sequence[int], upstream: str, redis: str
) -> LiteLLM | str:
    """LiteLLM's proxy (uvicorn, 1 worker) pinned to ``cpus``; or why not (a string)."""
    exe = litellm_executable()
    if isinstance(exe, str):
        return exe
    folder = procs.workdir / "litellm"
    folder.mkdir()
    master_key = "sk-" + secrets.token_urlsafe(24)
    conf = folder / "config.yaml"
    conf.write_text(litellm_config(upstream, redis, master_key))
    port = free_port()
    env = clean_env(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the price list from the internet
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        DISABLE_SCHEMA_UPDATE="True",
        NO_DOCS="True",
        HOME=str(folder),
    )
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL"):
        env.pop(name, None)
    cmd = [str(exe), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    proc = procs.spawn("litellm", cmd, cpus, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(f"litellm ready at {url}", ready, proc, timeout=120)
    except BenchError as exc:
        return f"LiteLLM did not start: {str(exc)[-600:]}"
    return LiteLLM(proc, url, master_key)


def installed_version() -> str | None:
    """LiteLLM's version in its venv (for the JSON), or None."""
    return LITELLM.version("litellm")
