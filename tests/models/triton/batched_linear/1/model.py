# mypy: ignore-errors
# (runs inside Triton's Python backend stub; its imports are not in the gateway's environment)
"""``batched_linear``: x @ W1.T after a fixed sleep per execute (see tests/models/README.md)."""

import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils

W1 = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float32)
POISON = -1000.0


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.sleep = float(config["parameters"]["sleep_ms"]["string_value"]) / 1000.0

    def execute(self, requests):
        time.sleep(self.sleep)  # the fixed cost of one call, whatever its rows
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            if (x < POISON).any():
                error = pb_utils.TritonError(f"poison row: a value below {POISON:g}")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            y = (x @ W1.T).astype(np.float32)
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", y)])
            )
        return responses
