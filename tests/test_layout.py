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


TENSORFLOW = {"tensorflow", "keras", "tf_keras_vis"}
SERVING = {
    "cli",
    "decode",
    "preprocess",
    "predict",
    "lite",
    "cams",
    "saliency",
    "ood",
    "scoring",
    "site",
    "registry",
    "evaluate",
    "metrics",
    "logits",
    "config",
    "access",
    "audit",
    "jobs",
    "progress",
    "run_history",
    "train_config",
    "data",
    "monitor",
    "shadow",
    "cluster",
    "model_registry",
    "serving_changes",
    "quantize",
}
"""The modules that answer, explain, score folders and run the app's pages and the REST API: TensorFlow-free at import.
On the TensorFlow side: model, network (the TensorFlow runtime and the TFLite export), datasets, training, candidate, callbacks,
tracking, sanity, reference_cams."""


def module_level_imports(path: Path) -> tuple[set[str], set[str]]:
    """(pneumo_core modules, other top-level packages) imported when the module itself is imported (not in functions)."""
    internal, external = set(), set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If):  # ``if TYPE_CHECKING:`` blocks are never executed
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            internal.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom):
            external.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            external.update(alias.name.split(".")[0] for alias in node.names)
    return internal, external


def test_the_serving_side_never_imports_tensorflow():
    modules = {path.stem: path for path in PACKAGE.glob("*.py")}
    assert SERVING <= set(modules)
    reached, frontier, offenders = set(), set(SERVING), []
    while frontier:
        name = frontier.pop()
        reached.add(name)
        internal, external = module_level_imports(modules[name])
        offenders += [f"{name} imports {package}" for package in sorted(external & TENSORFLOW)]
        frontier |= (internal & set(modules)) - reached - {"__init__"}
    assert not offenders, offenders
    assert reached - {"__init__"} <= SERVING, f"serving modules import {sorted(reached - SERVING)} at import time"


def test_the_readme_settings_table_lists_every_setting_config_reads():
    import re

    config = (PACKAGE / "config.py").read_text()
    variables = set(re.findall(r'_ENV = "([A-Z_]+)"', config))
    rows = [line for line in (PACKAGE.parent / "README.md").read_text().splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([A-Z][A-Z_]+)", row.split("|")[1])}  # the first cell
    assert variables and variables <= listed, sorted(variables - listed)
