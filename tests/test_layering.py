"""The package's layering: each module imports only its own layer or the layers below it,
and no two modules import each other, directly or around a loop.

Every import counts, at the top of a module or inside a function, under ``TYPE_CHECKING``
or not, because each one ties the importing module to the imported one. See
docs/architecture.md for the picture.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "elman"

# Layer of each top-level module or folder; a module inherits its folder's layer.
LAYERS = {
    "_lazy": 0,
    "_version": 0,
    "errors": 0,
    "config": 0,
    "files": 0,
    "runtime": 0,
    "data": 1,
    "models": 1,
    "checkpoint": 2,
    "training": 2,
    "forecasting": 2,
    "evaluation": 3,
    "export": 3,
    "online": 3,
    "forecaster": 4,
    "runs": 5,
    "serving": 5,
    "tuning": 5,
    "tutorial": 5,
    "cli": 6,
    "__main__": 6,
    # kept for compatibility: old import paths that re-export the new homes
    "kernels": 7,
    "resume": 7,
    "plotting": 7,
    "streaming": 7,
    "evaluate": 7,
    "online_forecaster": 7,
    "report": 7,
}
COMPAT = {name for name, layer in LAYERS.items() if layer == 7}
# Folders of one layer that must not import each other (the data flow's own direction).
APART = {("data", "models"), ("models", "data")}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ``elman`` module that ``name`` imports, anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # ``from pkg import mod`` imports the module pkg.mod when there is one
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import elman.x.y`` of a name in x
                target = target.rpartition(".")[0]
            if target.startswith("elman") and target != name:
                found.add(target)
    return found


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def layer_of(module: str) -> tuple[str, int]:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself: its __init__ re-exports lazily from anywhere
        return "elman", 8
    return parts[1], LAYERS[parts[1]]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """``A imports B`` lines for every import that goes up a layer or crosses APART."""
    bad = []
    for a, targets in sorted(edges.items()):
        top_a, la = layer_of(a)
        for b in sorted(targets):
            top_b, lb = layer_of(b)
            if b == "elman" and top_a != "elman":
                bad.append(f"{a} imports the package elman (import from the module instead)")
            elif lb > la or (top_a, top_b) in APART or (top_b in COMPAT and top_a != top_b):
                bad.append(f"{a} (layer {la}) imports {b} (layer {lb})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each as a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def test_every_folder_and_top_level_module_has_a_layer():
    tops = {module_name(p).split(".")[1] for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE}
    tops |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert sorted(tops - set(LAYERS)) == []


def test_no_module_imports_a_higher_layer():
    assert upward_imports(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checks_catch_an_upward_import_and_a_cycle(tmp_path):
    """The same checks on a copy of the package with one bad import added each way."""
    copy = tmp_path / "elman"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "data" / "scaling.py"
    target.write_text(
        target.read_text() + "\n\ndef _late():\n    from elman.forecaster import Forecaster\n"
    )
    edges = graph(copy)
    assert "elman.data.scaling (layer 1) imports elman.forecaster (layer 4)" in upward_imports(
        edges
    )
    assert any("elman.data.scaling" in group for group in cycles(edges))


def test_models_import_no_data_code_and_data_no_models():
    edges = graph()
    crossing = [
        f"{a} imports {b}"
        for a, targets in edges.items()
        for b in targets
        if (layer_of(a)[0], layer_of(b)[0]) in APART
    ]
    assert crossing == []


HEAVY = ("torch", "pandas", "numpy", "matplotlib")


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["train", "--help"], ["train", "--bogus"]]
)
def test_the_cli_parser_imports_no_heavy_library(argv):
    """Building the parser and parsing --help, --version or a bad flag loads none of them."""
    code = (
        "import sys\n"
        "import elman\n"
        "from elman.cli import build_parser\n"
        "parser = build_parser()\n"
        "try:\n"
        f"    parser.parse_args({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('loaded:', ','.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.splitlines()[-1] == "loaded: none"
