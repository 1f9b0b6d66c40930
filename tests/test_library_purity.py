"""vec2face/ is a pure library: no orchestration, tracking or versioning imports."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {"dagster", "mlflow", "dvc", "great_expectations"}
ROOT = Path(__file__).resolve().parents[1] / "vec2face"


def test_vec2face_never_imports_orchestration_packages():
    offenders = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT.parent)}: {n}" for n in names
                          if n.split(".")[0] in FORBIDDEN]
    assert ROOT.is_dir() and not offenders, offenders
