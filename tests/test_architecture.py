"""The package's shape (docs/design.md §9): imports flow one way through the role subpackages, with no
cycles, and only the command layer knows about Typer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import stylegan_cli

PACKAGE = Path(stylegan_cli.__file__).parent
# Highest first: a module may import from its own subpackage or from one later in this list.
LAYERS = ("cli", "report", "bench", "nvidia", "training", "projection", "metrics", "synthesis", "data", "model", "core")


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every stylegan_cli module a file imports, at its top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: use absolute imports"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    modules = _modules()
    return {name for name in found if name in modules}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else None  # None: stylegan_cli/__init__.py and __main__.py


def test_every_module_lives_in_a_role_subpackage():
    loose = [m for m in _modules() if _layer(m) is None and m not in ("stylegan_cli.__init__", "stylegan_cli.__main__")]
    assert not loose, f"modules outside the role subpackages: {loose}"
    assert {_layer(m) for m in _modules()} - {None} == set(LAYERS)


@pytest.mark.parametrize("module", sorted(_modules()))
def test_imports_flow_from_commands_down_to_core(module):
    layer = _layer(module)
    if layer is None:
        return
    for target in _imports(_modules()[module]):
        target_layer = _layer(target)
        if target_layer is None:
            continue
        assert LAYERS.index(target_layer) >= LAYERS.index(layer), \
            f"{module} ({layer}) imports {target} ({target_layer}), against {' -> '.join(LAYERS)}"


def test_no_import_cycles():
    modules = _modules()
    graph = {m: {t for t in _imports(p) if not t.endswith("__init__") and t != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_only_the_command_layer_imports_typer():
    for module, path in _modules().items():
        if _layer(module) != "cli":
            tree = ast.parse(path.read_text())
            names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not {n for n in names if n and n.split(".")[0] in ("typer", "click")}, f"{module} imports typer"


def test_the_code_passes_the_linter():
    """ruff, with the settings in pyproject.toml, over the package and the tests."""
    root = PACKAGE.parent
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "stylegan_cli", "tests"], cwd=root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
