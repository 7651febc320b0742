"""The shape of the package, checked: imports run one way, no cycles, no domain in the core, unique names.

docs/architecture.md draws the same layers; this test keeps the drawing true.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "refinekit"

# Lower layers never import higher ones. Within a layer, any import is allowed unless SIDEWAYS forbids it.
LAYERS = {
    "errors": 0,
    "config": 0,
    "moved": 0,
    "runtime": 1,
    "plugins": 2,
    "components": 2,
    "data": 2,
    "weights": 2,
    "training": 3,
    "refine": 3,
    "evaluation": 3,
    "cli": 4,
}
# The three things a user does stay independent; evaluation alone reads what training writes (it evaluates runs).
SIDEWAYS_FORBIDDEN = {
    ("training", "refine"),
    ("training", "evaluation"),
    ("refine", "training"),
    ("refine", "evaluation"),
}
# The contract kit for plugin authors runs a component through a real training step, so it sits above training.
EXEMPT = {"refinekit/__init__.py", "refinekit/__main__.py", "refinekit/plugins/contracts.py"}


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "refinekit" else None


def test_imports_run_one_way() -> None:
    wrong = []
    for module, path in _modules().items():
        source = _wing(module)
        if str(path.relative_to(PACKAGE.parent)) in EXEMPT or source not in LAYERS:
            continue
        for imported in _imports(path, top_level_only=False):
            target = _wing(imported)
            if target not in LAYERS or target == source:
                continue
            if LAYERS[target] > LAYERS[source] or (source, target) in SIDEWAYS_FORBIDDEN:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "imports against the layering of docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_every_module_is_in_a_layer() -> None:
    wings = {_wing(m) for m, path in _modules().items() if str(path.relative_to(PACKAGE.parent)) not in EXEMPT}
    unplaced = wings - {None, *LAYERS}
    assert not unplaced, f"add {sorted(unplaced)} to LAYERS here and to docs/architecture.md"


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for imported in _imports(path, top_level_only=True):
            while imported and imported not in modules:  # "refinekit.data.image_set.ImageSet" -> the module
                imported = imported.rpartition(".")[0]
            if imported and imported != module and not module.startswith(f"{imported}."):
                graph[module].add(imported)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)


def test_the_core_never_names_a_domain() -> None:
    named = [
        f"{module} imports {imported}"
        for module, path in _modules().items()
        for imported in _imports(path, top_level_only=False)
        if imported.startswith(("refinekit_eyes", "refinekit_digits"))
    ]
    assert not named


def test_no_two_modules_share_a_name() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for module, path in _modules().items():
        if path.name != "__init__.py":
            by_name[path.stem].append(module)
    assert {name: where for name, where in by_name.items() if len(where) > 1} == {}
