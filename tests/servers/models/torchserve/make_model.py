# mypy: ignore-errors
# (runs inside a model-server venv; its imports are not in the gateway's environment)
"""Build the TorchScript weights for the TorchServe `linear` model.

Usage: python make_model.py OUT.pt SCALE

A 4 -> 2 linear layer without bias, weight SCALE * [[1, 0, 0, 0], [0, 1, 1, 1]],
so [1, 2, 3, 4] -> SCALE * [1, 9].
"""

import sys

import torch


def main() -> None:
    out, scale = sys.argv[1], float(sys.argv[2])
    model = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]) * scale)
    torch.jit.script(model).save(out)


if __name__ == "__main__":
    main()
