"""The shape of the ``sidecar`` package, read from its source with ``ast``: no module grows
past 700 lines, no two modules import each other (directly or round a longer loop), and
``sidecar/services/`` holds provider modules only.

The import graph counts every import a module can run: module-level ones and those deferred
into functions (a deferred import still ties the two modules together), with relative imports
resolved. Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sidecar"
MAX_LINES = 700
# Being split: leave the list as each of them drops under the limit.
BEING_SPLIT: set[str] = set()


def _modules() -> dict[str, Path]:
    """``sidecar.x.y`` -> its file (a package by its ``__init__.py``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif not (isinstance(child, ast.If) and _is_type_checking(child)):
            yield from _import_nodes(child)


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the package that ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from pkg import mod`` imports the module; ``from mod import name`` the module.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                found.add(target)
    return found


def _first_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop, as the list of modules round it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                circle = visit(target)
                if circle:
                    return circle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            circle = visit(module)
            if circle:
                return circle
    return None


def test_no_module_is_over_700_lines() -> None:
    too_long = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES and relative not in BEING_SPLIT:
            too_long[relative] = lines
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_the_allow_list_names_modules_that_exist() -> None:
    assert all((PACKAGE / relative).is_file() for relative in BEING_SPLIT)


def test_the_import_graph_has_no_circle() -> None:
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    assert graph["sidecar.services.openai"], "the graph reads imports"
    circle = _first_circle(graph)
    assert circle is None, "import circle: " + " -> ".join(circle or [])


def _registers(decorator: ast.expr) -> bool:
    return (isinstance(decorator, ast.Name) and decorator.id == "register") or (
        isinstance(decorator, ast.Attribute) and decorator.attr == "register"
    )


def test_services_hold_one_provider_per_module() -> None:
    services = PACKAGE / "services"
    assert not [p.name for p in services.iterdir() if p.is_dir() and p.name != "__pycache__"]
    providers = 0
    for path in sorted(services.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        registered = [
            node.name for node in tree.body
            if isinstance(node, ast.ClassDef) and any(_registers(d) for d in node.decorator_list)
        ]
        assert len(registered) == 1, f"services/{path.name} registers {registered}, not one service"
        providers += 1
    assert providers >= 18


# The core: what the HTTP layer (api/, proxy.py, the middlewares) calls, and never the reverse.
CORE = ("sidecar.endpoints", "sidecar.semantic", "sidecar.ingest", "sidecar.writes", "sidecar.services",
        "sidecar.runtime", "sidecar.chunking", "sidecar.es", "sidecar.protocol", "sidecar.remote",
        "sidecar.inference")
HTTP_LAYER = ("sidecar.api", "sidecar.proxy", "sidecar.app", "sidecar.security")


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_core_never_reaches_up_into_the_http_layer() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if not _in(name, CORE):
            continue
        wrong += [f"{name} imports {target}" for target in sorted(_imported(name, path, modules))
                  if _in(target, HTTP_LAYER)]
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                f"{node.module}.{a.name}" for a in node.names] if node.module == "aiohttp" else [node.module or ""]
            wrong += [f"{name} imports {n}" for n in names if n == "aiohttp.web" or n.startswith("aiohttp.web.")]
    assert wrong == []


def test_one_caller_client_and_one_upstream_error() -> None:
    """Calls to Elasticsearch with a caller's credentials go through ``sidecar.es.caller``;
    Elasticsearch's errors are passed on by one class."""
    defined: dict[str, list[str]] = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                defined.setdefault(node.name, []).append(name)
    assert defined["UpstreamError"] == ["sidecar.es.errors"]
    assert defined["Caller"] == ["sidecar.es.caller"]
    assert defined["Capabilities"] == ["sidecar.es.capabilities"]
    assert "CallerClient" not in defined and "_Cached" not in defined
