"""Serving imports serving: the service module pulls in neither matplotlib nor the evaluation machinery."""

from __future__ import annotations

import json
import subprocess
import sys

from cascade_radar.config import PROJECT_ROOT


def test_the_service_imports_neither_matplotlib_nor_training_evaluate() -> None:
    code = ("import json, sys, time; t = time.perf_counter(); import serving.service; "
            "print(json.dumps({'seconds': time.perf_counter() - t, 'modules': sorted(sys.modules)}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=120)
    modules = set(json.loads(out.stdout.strip().splitlines()[-1])["modules"])
    assert "serving.service" in modules
    assert not {m for m in modules if m == "matplotlib" or m.startswith("matplotlib.")}
    assert not {"training.evaluate", "training.report", "training.train", "sklearn.calibration", "shap"} & modules
