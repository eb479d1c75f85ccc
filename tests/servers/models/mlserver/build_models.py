# mypy: ignore-errors
# (runs inside a model-server venv; its imports are not in the gateway's environment)
"""Build the MLServer model repository for `linear` (versions "1" and "2").

Usage: python build_models.py OUT_DIR   -> OUT_DIR/linear-v{1,2}/{model.joblib,model-settings.json}

Each version is a real scikit-learn LinearRegression(fit_intercept=False), fitted on
random data and then given the exact weights v * W1 so the served numbers are exact:
[1, 2, 3, 4] -> v * [1, 9].  settings.json (ports) is written per test run, not here.
"""

import json
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LinearRegression

W1 = np.array([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float64)


def main() -> None:
    out = Path(sys.argv[1])
    x = np.random.RandomState(0).rand(50, 4)
    for version in (1, 2):
        weight = W1 * version
        model = LinearRegression(fit_intercept=False).fit(x, x @ weight.T)
        assert np.allclose(model.coef_, weight)
        model.coef_ = weight.copy()  # exact numbers instead of 1.0000000000000007
        d = out / f"linear-v{version}"
        d.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, d / "model.joblib")
        settings = {
            "name": "linear",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1, 2]}],
            "parameters": {"uri": "./model.joblib", "version": str(version)},
        }
        (d / "model-settings.json").write_text(json.dumps(settings, indent=1) + "\n")


if __name__ == "__main__":
    main()
