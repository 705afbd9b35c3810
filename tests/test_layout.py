"""The package's shape: no import cycles inside pneumo_core."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pneumo_core"


def internal_imports(path: Path) -> set[str]:
    """Modules of pneumo_core imported anywhere in the file (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pneumo_core."):
            found.add(node.module.split(".")[1])
    return found


def test_no_import_cycles_in_pneumo_core():
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    graph = {name: internal_imports(path) & set(modules) - {name, "__init__"} for name, path in modules.items()}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in stack:
                cycles.append(stack[stack.index(target) :] + [target])
            elif len(stack) < len(graph):
                visit(target, stack + [target])

    for start in graph:
        visit(start, [start])
    assert not cycles, sorted({" → ".join(c) for c in cycles})
