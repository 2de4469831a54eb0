"""The import map: no circle, and no arrow from a lower layer of the package up to a higher one.

Layers, lowest first (docs/architecture.md draws them): contracts and schemas; the env; data
formats, networks and run infrastructure; acting and RL; experts and learners; the gate, the
stages and analysis; the pipeline. A module may import its own layer or lower ones only.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "il_lab"
LAYERS = [
    ("il_lab.errors", "il_lab.interfaces", "il_lab.config.schema", "il_lab.config.resolvers"),
    ("il_lab.envs",),
    ("il_lab.datasets", "il_lab.networks", "il_lab.runtime"),
    ("il_lab.rollout", "il_lab.evaluation", "il_lab.video", "il_lab.policies",
     "il_lab.interaction", "il_lab.rl"),
    ("il_lab.experts", "il_lab.learners"),
    ("il_lab.config.gate", "il_lab.stages", "il_lab.analysis"),
    ("il_lab.pipeline",),
]  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every il_lab module ``path`` imports, at the top or inside a function (not the
    ``if TYPE_CHECKING:`` imports, which annotations name and nothing runs)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("il_lab")}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {
    name: {m for m in imports_of(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def layer(module: str) -> int:
    for index, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


# The namespaces themselves (il_lab, il_lab.config, ...) when their __init__ imports nothing.
NAMESPACES = {m for m, p in MODULES.items() if p.name == "__init__.py" and not GRAPH[m]}


@pytest.mark.parametrize("module", sorted(set(MODULES) - NAMESPACES))
def test_no_arrow_runs_up(module):
    upward = sorted(m for m in GRAPH[module] - NAMESPACES if layer(m) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports {upward}"


def test_no_import_circle():
    done, path = set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        path.append(module)
        for imported in sorted(GRAPH[module]):
            visit(imported)
        path.pop()
        done.add(module)

    for module in sorted(GRAPH):
        visit(module)
