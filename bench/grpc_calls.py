"""The gRPC side of the checks: one real gRPC call (grpcio's client) with the very message h2load
sends, and the servers' own counts of answered and failed requests (Prometheus text), read
around every measured run. ``tritonclient.grpc.service_pb2`` reads the reply; this process never
imports kserve (both register ``inference.*`` in protobuf's default pool)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.h2load import MODEL_INFER


@dataclass(frozen=True)
class Reply:
    message: bytes  # the serialized ModelInferResponse
    output_shapes: list[list[int]]
    trailers: dict[str, str]


def model_infer(address: str, message: bytes, timeout: float = 10.0) -> Reply:
    """ModelInfer with an already serialized request; grpc.RpcError if it fails."""
    from tritonclient.grpc import service_pb2

    with grpc.insecure_channel(address) as channel:
        # no serializers: bytes in, bytes out
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(MODEL_INFER)
        data, done = call.with_call(message, timeout=timeout)
    reply = service_pb2.ModelInferResponse.FromString(data)
    shapes = [list(output.shape) for output in reply.outputs]
    trailers = {k: str(v) for k, v in (done.trailing_metadata() or ())}
    return Reply(bytes(data), shapes, trailers)


def prometheus_sum(
    url: str, metric: str, match: Callable[[dict[str, str]], bool], timeout: float = 10.0
) -> float:
    """The sum of the counter ``metric``'s samples (``gateway_requests_total``, or Triton's
    ``nv_inference_request_success``, which has no ``_total``) whose labels ``match``. A metric
    the server does not expose at all is an error, not a zero."""
    text = httpx.get(url, timeout=timeout).raise_for_status().text
    family_name = metric.removesuffix("_total")
    names = {family_name, family_name + "_total"}  # the parser adds _total to counters
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        if family.name != family_name:
            continue
        found = True
        total += sum(s.value for s in family.samples if s.name in names and match(s.labels))
    if not found:
        raise ValueError(f"{url} has no metric {metric}")
    return total


@dataclass(frozen=True)
class Counts:
    ok: int
    failed: int


def gateway_grpc_counts(metrics_url: str) -> Counts:
    """``gateway_requests_total{protocol="grpc"}``: 2xx, and every other status class."""

    def grpc_calls(ok: bool) -> Callable[[dict[str, str]], bool]:
        return lambda labels: (
            labels.get("protocol") == "grpc" and (labels.get("status_class") == "2xx") is ok
        )

    ok = prometheus_sum(metrics_url, "gateway_requests_total", grpc_calls(True))
    failed = prometheus_sum(metrics_url, "gateway_requests_total", grpc_calls(False))
    return Counts(round(ok), round(failed))


def triton_counts(metrics_url: str, model: str = "linear") -> Counts:
    """Triton's ``nv_inference_request_success`` and ``..._failure`` (every reason, every
    version) of ``model``."""

    def of_model(labels: dict[str, str]) -> bool:
        return labels.get("model") == model

    ok = prometheus_sum(metrics_url, "nv_inference_request_success", of_model)
    failed = prometheus_sum(metrics_url, "nv_inference_request_failure", of_model)
    return Counts(round(ok), round(failed))
