"""The generated TF Serving gRPC modules (``gateway/protos``): never stale, importable beside
tritonclient's, and on the wire under TF Serving's own names and numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import any_pb2, message

from gateway.protos.tensorflow.core.framework import tensor_pb2, types_pb2
from gateway.protos.tensorflow.core.protobuf import meta_graph_pb2
from gateway.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)
from tests.support import REPO

PROTOS = REPO / "gateway" / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", ".desc")


def _generated(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.name.endswith(GENERATED_SUFFIXES)
    }


def test_the_committed_modules_are_what_scripts_protos_generates(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(
        [str(REPO / "scripts" / "protos"), str(tmp_path)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = _generated(tmp_path / "gateway" / "protos")
    committed = _generated(PROTOS)
    assert fresh, "scripts/protos generated nothing"
    stale = sorted(
        name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name)
    )
    assert not stale, f"run scripts/protos and commit: {stale}"


def test_every_package_directory_has_an_empty_init() -> None:
    for folder in [PROTOS, *(p for p in PROTOS.rglob("*") if p.is_dir())]:
        if folder.name == "__pycache__":
            continue
        init = folder / "__init__.py"
        assert init.is_file(), folder
        assert init.read_text() == "", init


@pytest.mark.parametrize("first", ["tritonclient", "ours"])
def test_imports_beside_tritonclient_grpc_in_one_process(first: str) -> None:
    """Different proto packages (inference vs tensorflow*) and file names: no descriptor-pool
    clash in either import order, and no top-level ``tensorflow`` module appears."""
    ours = (
        "from gateway.protos.tensorflow_serving.apis import prediction_service_pb2_grpc, "
        "model_service_pb2_grpc, predict_pb2"
    )
    triton = "import tritonclient.grpc, tritonclient.grpc.service_pb2 as s"
    code = "\n".join(
        [
            *((triton, ours) if first == "tritonclient" else (ours, triton)),
            "import sys",
            "assert s.ModelInferRequest.DESCRIPTOR.full_name == 'inference.ModelInferRequest'",
            "assert predict_pb2.PredictRequest().DESCRIPTOR.full_name == "
            "'tensorflow.serving.PredictRequest'",
            "assert not [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tensorflow_serving')]",
            "print('ok')",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _fields(cls: type[message.Message]) -> dict[str, int]:
    return {f.name: f.number for f in cls.DESCRIPTOR.fields}


def test_the_wire_names_and_numbers_are_tf_servings() -> None:
    """A pin of what the .proto files say (checked against tensorflow/serving and
    tensorflow/tensorflow when they were written), so an edit cannot slip through."""
    assert _fields(model_pb2.ModelSpec) == {
        "name": 1,
        "version": 2,
        "version_label": 4,
        "signature_name": 3,
    }
    spec = model_pb2.ModelSpec.DESCRIPTOR
    assert spec.fields_by_name["version"].message_type.full_name == "google.protobuf.Int64Value"
    assert [f.name for f in spec.oneofs_by_name["version_choice"].fields] == [
        "version",
        "version_label",
    ]
    request = _fields(predict_pb2.PredictRequest)
    assert {k: request[k] for k in ("model_spec", "inputs", "output_filter")} == {
        "model_spec": 1,
        "inputs": 2,
        "output_filter": 3,
    }
    assert _fields(predict_pb2.PredictResponse) == {"model_spec": 2, "outputs": 1}
    tensor = _fields(tensor_pb2.TensorProto)
    assert tensor == {
        "dtype": 1,
        "tensor_shape": 2,
        "version_number": 3,
        "tensor_content": 4,
        "half_val": 13,
        "float_val": 5,
        "double_val": 6,
        "int_val": 7,
        "string_val": 8,
        "scomplex_val": 9,
        "int64_val": 10,
        "bool_val": 11,
        "dcomplex_val": 12,
        "resource_handle_val": 14,
        "variant_val": 15,
        "uint32_val": 16,
        "uint64_val": 17,
        "float8_val": 18,
    }
    assert {
        name: types_pb2.DataType.Value(name)
        for name in ("DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_STRING", "DT_INT64", "DT_BOOL")
    } == {
        "DT_FLOAT": 1,
        "DT_DOUBLE": 2,
        "DT_INT32": 3,
        "DT_STRING": 7,
        "DT_INT64": 9,
        "DT_BOOL": 10,
    }
    assert _fields(meta_graph_pb2.TensorInfo) == {
        "name": 1,
        "coo_sparse": 4,
        "composite_tensor": 5,
        "dtype": 2,
        "tensor_shape": 3,
    }
    assert _fields(meta_graph_pb2.SignatureDef) == {
        "inputs": 1,
        "outputs": 2,
        "method_name": 3,
        "defaults": 4,
    }
    status = get_model_status_pb2.ModelVersionStatus
    assert _fields(status) == {"version": 1, "state": 2, "status": 3}
    assert status.State.Value("AVAILABLE") == 30


def test_the_rpc_paths_and_the_any_type_url() -> None:
    services = {
        s.full_name: [m.name for m in s.methods]
        for s in (
            prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
            model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
        )
    }
    assert services == {
        "tensorflow.serving.PredictionService": [
            "Classify",
            "Regress",
            "Predict",
            "MultiInference",
            "GetModelMetadata",
        ],
        "tensorflow.serving.ModelService": ["GetModelStatus"],
    }
    packed = any_pb2.Any()
    packed.Pack(get_model_metadata_pb2.SignatureDefMap())
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    assert hasattr(prediction_service_pb2_grpc, "PredictionServiceStub")


def test_a_predict_request_round_trips_through_bytes() -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "linear"
    request.model_spec.version.value = 2
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=1)
    request.inputs["x"].float_val.extend([1.0, 2.0])
    again = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert again == request
    assert again.model_spec.WhichOneof("version_choice") == "version"
