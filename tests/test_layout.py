"""The package's shape: subpackages by role, no import cycles, and the serving seam as a package boundary."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pneumo_core"
HEAVY = ("tensorflow", "keras", "tf_keras_vis", "pandas", "sklearn", "scipy", "mlflow")
TENSORFLOW = ("tensorflow", "keras", "tf_keras_vis")
LIGHT_PACKAGES = ("common", "serving", "store", "operations", "operating_point")
"""Free of every heavy library at import: what answering a film needs (their ``__init__`` docstrings say so)."""
TENSORFLOW_PACKAGES = ("modeling", "training")
"""The only packages whose modules may import TensorFlow at import time; every other one is TensorFlow-free."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if path.name != "__main__.py"}
SUBPACKAGES = sorted({name.split(".")[1] for name in MODULES if name.count(".") >= 1 and (PACKAGE / name.split(".")[1]).is_dir()})


def internal_imports(path: Path) -> set[str]:
    """Modules of pneumo_core imported anywhere in the file (at the top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pneumo_core"):
            base = node.module
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {name for name in found if name in MODULES}


def test_every_module_sits_in_a_subpackage_by_role():
    flat = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "config.py"], flat
    assert set(LIGHT_PACKAGES) | set(TENSORFLOW_PACKAGES) <= set(SUBPACKAGES)


def undeclared_imports(package_root: Path) -> list[str]:
    """Each package another subpackage's modules import but its ``__init__`` docstring does not name (``config``
    aside): a subpackage's docstring says what it may import."""
    missing = []
    for source, target in sorted({(source, target) for source, target, _ in package_edges(package_root)}):
        init = package_root / source / "__init__.py"
        if target != "config" and init.is_file():
            docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
            if f"{package_root.name}.{target}`" not in docstring:
                missing.append(f"{source} imports {target}")
    return missing


def test_every_subpackage_says_what_it_may_import():
    assert not undeclared_imports(PACKAGE)


def test_the_declaration_check_finds_an_import_its_docstring_does_not_name(tmp_path):
    import shutil

    copy = shutil.copytree(PACKAGE, tmp_path / "pneumo_core", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "jobs" / "planted.py").write_text("from pneumo_core.store.model_dir import read_metadata\n")
    assert undeclared_imports(copy) == ["jobs imports store"]


LAYERS = (
    ("config", "common"),
    ("jobs", "store"),
    ("modeling",),
    ("serving",),
    ("visualize",),
    ("evaluation",),
    ("operating_point", "operations", "training"),
    ("cli",),
)
"""The order of the packages, bottom first: a package imports only packages of lower layers (config and the
package's root are below everything)."""


def package_edges(package_root: Path) -> set[tuple[str, str, str]]:
    """(importing package, imported package, file) for every import between two packages of ``package_root``."""
    edges = set()
    for path in sorted(package_root.rglob("*.py")):
        relative = path.relative_to(package_root)
        source = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{package_root.name}."):
                target = node.module.split(".")[1]
                if target != source:
                    edges.add((source, target, str(relative)))
    return edges


def edges_against_the_layers(package_root: Path) -> list[str]:
    layer = {package: level for level, packages in enumerate(LAYERS) for package in packages}
    layer["__main__"] = len(LAYERS)
    return sorted(
        f"{file}: {source} imports {target}"
        for source, target, file in package_edges(package_root)
        if layer.get(target, -1) >= layer[source] and target != "config"
    )


def test_every_package_imports_only_the_layers_below_it():
    assert {package for packages in LAYERS for package in packages} - {"config"} == set(SUBPACKAGES)
    assert not edges_against_the_layers(PACKAGE)


def test_the_layer_check_finds_a_planted_import_that_runs_up(tmp_path):
    import shutil

    copy = shutil.copytree(PACKAGE, tmp_path / "pneumo_core", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "store" / "planted.py").write_text("from pneumo_core.operations.audit import record_action\n")
    (copy / "jobs" / "sideways.py").write_text("from pneumo_core.store.model_dir import read_metadata\n")
    assert edges_against_the_layers(copy) == [
        "jobs/sideways.py: jobs imports store",
        "store/planted.py: store imports operations",
    ]


def test_no_import_cycles_in_pneumo_core():
    graph = {name: internal_imports(path) - {name, "pneumo_core"} for name, path in MODULES.items()}
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


def imported_after(modules: list[str], *argv: str) -> set[str]:
    """Top-level packages in ``sys.modules`` of a fresh process after importing ``modules`` (or running ``argv``)."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("package", LIGHT_PACKAGES)
def test_the_light_packages_import_no_heavy_library(package):
    modules = [name for name in MODULES if name.startswith(f"pneumo_core.{package}")]
    assert not imported_after(modules) & set(HEAVY)


def test_every_other_package_is_tensorflow_free_at_import():
    modules = [name for name in MODULES if name.split(".")[1:2] and name.split(".")[1] not in TENSORFLOW_PACKAGES]
    assert not imported_after(modules) & set(TENSORFLOW)


def test_predicting_one_film_imports_no_heavy_library(tmp_path):
    film = next((PACKAGE.parent / "examples").glob("*.jpeg"))
    script = (
        "import json, sys\n"
        "from pneumo_core.cli.main import main\n"
        f"code = main(['predict', {str(film)!r}])\n"
        "print(json.dumps({'code': code, 'modules': sorted({m.split('.')[0] for m in sys.modules})}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0 and json.loads(done.stdout.splitlines()[0])["label"] in ("NORMAL", "PNEUMONIA")
    assert not set(result["modules"]) & set(HEAVY)


def test_the_settings_table_lists_every_setting_config_reads():
    from pneumo_core.config import GROUPS

    variables = {group.variable(field) for group in GROUPS for field in group.model_fields}
    table = (PACKAGE.parent / "docs" / "configuration.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([A-Z][A-Z_]+)", row.split("|")[1])}  # the first cell
    assert len(variables) > 20 and variables <= listed, sorted(variables - listed)


def test_page_functions_take_what_they_read():
    """A page's functions get the model, the films and the settings as arguments: none reads a variable the page
    assigns at module level (constants in capitals aside), so a section can be read, moved and tested alone."""
    offenders = []
    for path in sorted((PACKAGE.parent / "app_pages").glob("*.py")):
        tree = ast.parse(path.read_text())
        assigned = {
            node.id
            for statement in tree.body
            if not isinstance(statement, ast.FunctionDef | ast.ClassDef | ast.Import | ast.ImportFrom)
            for node in ast.walk(statement)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and not node.id.isupper()
        }
        for function in (node for node in tree.body if isinstance(node, ast.FunctionDef)):
            own = {a.arg for a in function.args.args + function.args.kwonlyargs}
            own |= {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            read = {n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            offenders += [f"{path.name}: {function.name} reads {name}" for name in sorted((read & assigned) - own)]
    assert not offenders, offenders


def test_no_page_prints_a_stray_string():
    """Streamlit's magic writes every bare string expression of a page on the page: only the docstring may be one."""
    stray = []
    for path in sorted((PACKAGE.parent / "app_pages").glob("*.py")) + [PACKAGE.parent / "streamlit_app.py"]:
        for node in ast.parse(path.read_text()).body[1:]:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                stray.append(f"{path.name}:{node.lineno}")
    assert not stray, stray


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PNEUMO_RUNTIME", "fast"),
        ("PNEUMO_LITE_THREADS", "many"),
        ("PNEUMO_API_AUTH", "maybe"),
        ("PNEUMO_MONITOR_RETENTION_DAYS", "-1"),
        ("PNEUMO_TRAIN_MEMORY_MB", "lots"),
        ("PNEUMO_TRAINING", "sometimes"),
        ("PNEUMO_PUBLIC", "yes please"),
        ("PNEUMO_API_RATE", "lots"),
        ("PNEUMO_API_RATE_STORAGE", "postgres://elsewhere"),
        ("PNEUMO_MODEL_URI", "pneumo-densenet121@champion"),
    ],
)
def test_a_wrong_setting_stops_the_command_line_and_the_api_naming_its_variable(variable, value, monkeypatch, capsys):
    from pneumo_core.cli.main import main

    monkeypatch.setenv(variable, value)
    assert main(["predict", str(PACKAGE.parent / "examples" / "normal_IM-0162-0001.jpeg")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and variable in err and repr(value) in err
    done = subprocess.run(
        [sys.executable, "-c", "import pneumo_api"],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
        timeout=120,
        env={**os.environ, variable: value},
    )
    assert done.returncode != 0 and variable in done.stderr and "Traceback" not in done.stderr


def test_the_package_declares_only_requirements_it_can_read():
    """``pip install .`` reads its dependencies from the files pyproject.toml names: every line there must be a
    requirement (a ``-r`` include, which pip reads, fails the package's metadata)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    files = project["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    names = set()
    for name in files:
        for line in (PACKAGE.parent / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                names.add(Requirement(line).name.lower())
    assert {"tensorflow-cpu", "ai-edge-litert", "streamlit", "fastapi"} <= names


def test_a_wrong_value_in_the_secrets_file_is_named_by_its_section_and_key(tmp_path, monkeypatch):
    from pneumo_core.config import SettingError, access_settings, check_settings

    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[operator]\npassword = "s3cret"\n[training]\nenabled = "maybe"\n')
    monkeypatch.setenv("PNEUMO_SECRETS_FILE", str(secrets))
    with pytest.raises(SettingError, match=r"\[training\] enabled in .*secrets.toml='maybe'"):
        check_settings()
    secrets.write_text('[operator]\npassword = "s3cret"\n[training]\nenabled = false\n')
    monkeypatch.setenv("PNEUMO_OPERATOR_PASSWORD", "from-the-environment")  # a new environment: settings read anew
    access = access_settings()
    assert access.operator_password == "from-the-environment" and access.training is False  # the environment wins
    assert "s3cret" not in repr(access) and "from-the-environment" not in repr(access)
