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


# The floors, lowest first: a package may import the floors below it, never its own floor's neighbour or one above;
# the one sideways arrow allowed: serving reads the ledger (operations.ledger) for /v1/forecasts.
FLOORS = {"cascade_radar": 0, "features": 1, "training": 2, "forecast": 3, "operations": 4, "serving": 4, "cli": 5}
SIDEWAYS = {("serving", "operations")}


def project_imports() -> dict[str, set[tuple[str, str]]]:
    """Per project package, every (module file, imported project package) pair, from the source (imports inside functions too)."""
    import ast

    out: dict[str, set[tuple[str, str]]] = {name: set() for name in FLOORS}
    for package in FLOORS:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                out[package] |= {(str(path.relative_to(PROJECT_ROOT)), n.split(".")[0]) for n in names
                                 if n.split(".")[0] in FLOORS and n.split(".")[0] != package}
    return out


def wrong_way(graph: dict[str, set[tuple[str, str]]]) -> list[tuple[str, str]]:
    """The imports that do not run downwards: (module file, imported package)."""
    return sorted((where, top) for package, edges in graph.items() for where, top in edges
                  if FLOORS[top] >= FLOORS[package] and (package, top) not in SIDEWAYS)


def test_the_import_graph_runs_downwards_only() -> None:
    graph = project_imports()
    assert graph["cascade_radar"] == set()  # the ground floor imports nothing of the project
    assert wrong_way(graph) == []
    assert not {top for _, top in graph["features"]} & {"training", "forecast", "serving", "operations", "cli"}
    assert not {top for _, top in graph["training"]} & {"forecast", "serving", "operations", "cli"}
    assert not {top for _, top in graph["operations"]} & {"serving", "cli"}
    assert {top for _, top in graph["cli"]} >= {"forecast", "operations", "training"}  # the roof reaches the floors it prints from
    # the canary: an upward arrow is seen
    assert wrong_way({**graph, "features": {("features/x.py", "training")}}) == [("features/x.py", "training")]
