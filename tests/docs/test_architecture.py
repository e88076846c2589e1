"""The package's shape: no import cycles among sycam modules, no module over 600 lines, no function over 100.

Read from the source (nothing is imported). Every ``import`` counts, at module level and inside functions
(a lazy import still ties two modules together); only imports under ``if TYPE_CHECKING:`` are left out.
An import names the module it loads: ``from .base import X`` is an arrow to ``sycam.metrics.base``,
``from . import base`` too when ``base`` is a submodule, ``from ..metrics import f`` an arrow to the package
``sycam.metrics`` (its ``__init__``). The implicit import of a parent package is not an arrow (every
submodule would then close a circle with its package's ``__init__``).

Each failure names what breaks the rule: the modules of each cycle with the lines that tie them, the modules
over the size limit with their lengths, the functions over the limit with their file, line and length.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sycam"

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, wherever it stands, except the ``if TYPE_CHECKING:`` ones."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The sycam modules one import statement loads (its own name, not its parent packages)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if node.level:
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            found.add(f"{base}.{alias.name}")
        elif base in modules:
            found.add(base)
    return found


def import_graph() -> dict[str, dict[str, list[int]]]:
    """module -> {imported sycam module: the lines of the imports}."""
    modules = _modules()
    graph: dict[str, dict[str, list[int]]] = {}
    for name, path in modules.items():
        edges: dict[str, list[int]] = {}
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(name, path, node, modules):
                if target != name:
                    edges.setdefault(target, []).append(node.lineno)
        graph[name] = {target: sorted(lines) for target, lines in sorted(edges.items())}
    return graph


def cycles(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, in name order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _describe(component: list[str], graph: dict[str, dict[str, list[int]]]) -> str:
    members = set(component)
    ties = [f"{source} -> {target} (line {', '.join(map(str, lines))})"
            for source in component for target, lines in graph[source].items() if target in members]
    return f"cycle of {len(component)} modules: " + "; ".join(ties)


def test_no_import_cycles():
    graph = import_graph()
    found = [_describe(component, graph) for component in cycles(graph)]
    assert not found, "import cycles among sycam modules:\n" + "\n".join(found)


def test_no_module_over_the_line_limit():
    long = [f"{path.relative_to(ROOT)}: {count} lines"
            for path in sorted(PACKAGE.rglob("*.py"))
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_no_function_over_the_line_limit():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                count = node.end_lineno - node.lineno + 1
                if count > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {count} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(sorted(long))


def test_the_cycle_finder_sees_a_lazy_import_cycle():
    """The finder itself: a circle closed by an import inside a function is found, a TYPE_CHECKING one is not."""
    lazy = ast.parse("def f():\n    from .b import x\n")
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import x\n")
    assert len(list(_imports(lazy))) == 1
    assert [type(node) for node in _imports(guarded)] == [ast.ImportFrom]  # only `from typing import ...`
    assert cycles({"p.a": {"p.b": [2]}, "p.b": {"p.a": [1]}, "p.c": {"p.a": [1]}}) == [["p.a", "p.b"]]
