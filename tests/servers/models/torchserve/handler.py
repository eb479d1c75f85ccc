# mypy: ignore-errors
# (runs inside a model-server venv; its imports are not in the gateway's environment)
"""TorchServe handler for the `linear` test model.

Request body: {"instances": [[f, f, f, f], ...]} or {"data": [[f, f, f, f], ...]}
(or a bare list of rows).  Response: {"predictions": [[f, f], ...]}.
NaN/Inf inputs pass through torch and come back as the JSON literals NaN/Infinity
(the TorchServe worker serializes with Python's json module).
"""

import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class LinearHandler(BaseHandler):
    def preprocess(self, data):
        rows = []
        for req in data:
            body = req.get("body") or req.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            if isinstance(body, dict):
                body = body.get("instances", body.get("data"))
            rows.append(body)
        self._counts = [len(r) for r in rows]
        return torch.tensor([x for r in rows for x in r], dtype=torch.float32)

    def postprocess(self, data):
        flat = data.tolist()
        out, i = [], 0
        for n in self._counts:
            out.append({"predictions": flat[i : i + n]})
            i += n
        return out
