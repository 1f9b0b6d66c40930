"""The layers import one way only: vec2face/ (a pure library: no orchestration, tracking or
versioning packages) <- assets_defs/ (assets, checks, resources) <- orchestration/
(Definitions, jobs, schedules, sensors)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FORBIDDEN = {"dagster", "mlflow", "dvc", "great_expectations"}
REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "vec2face"


def _imports(folder: Path) -> list[tuple[str, str]]:
    """(file, imported module) for every absolute import of every module under ``folder``."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found += [(str(path.relative_to(REPO)), n) for n in names]
    return found


def test_vec2face_never_imports_orchestration_packages():
    offenders = [f"{f}: {n}" for f, n in _imports(ROOT) if n.split(".")[0] in FORBIDDEN]
    assert ROOT.is_dir() and not offenders, offenders


@pytest.mark.parametrize(
    "folder, above",
    [("vec2face", {"assets_defs", "orchestration"}), ("assets_defs", {"orchestration"})],
)
def test_no_layer_imports_a_layer_above_it(folder, above):
    offenders = [f"{f}: {n}" for f, n in _imports(REPO / folder) if n.split(".")[0] in above]
    assert (REPO / folder).is_dir() and not offenders, offenders


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (import circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            part = stack[stack.index(node):]
            del stack[stack.index(node):]
            if len(part) > 1:
                circles.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_two_library_modules_import_each_other():
    from assets_defs.versions import library_imports

    modules = []
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    graph = {m: set(library_imports(m)) for m in modules}
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
