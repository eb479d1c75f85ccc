# mypy: ignore-errors
# (runs inside a model-server venv; its imports are not in the gateway's environment)
"""Triton Python-backend model for `linear`; the same file serves every version.

Version v computes x @ (v * W1).T with W1 = [[1, 0, 0, 0], [0, 1, 1, 1]], so
[1, 2, 3, 4] -> v * [1, 9].  The version comes from the repository folder name.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

W1 = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float32)


class TritonPythonModel:
    def initialize(self, args):
        self.weight_t = (W1 * float(args["model_version"])).T

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            y = (x @ self.weight_t).astype(np.float32)
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", y)])
            )
        return responses
