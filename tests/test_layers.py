"""The layout holds: every import, lazy ones included, goes down the layers that the
design names, never up, and no modules import each other in a loop.

The layers, top to bottom (a module may import its own layer and any layer below):

    entry       docq/__main__.py
    cli         docq/cli/            parse, call the library, render
    tools       docq/bench/          measures the worker, the queue and docq top
    tui         docq/tui/            docq top: Textual, over the library and render
    web         docq/web/            docq serve: FastAPI, over the library and render
    render      docq/render/         Rich and JSON output; knows no Typer
    worker      docq/worker/         the loop, children, handlers
    library     docq/queue.py and the modules it uses: what the queue does
    processing  docq/processing/     a file in, text out; knows no queue
    database    docq/db.py, schema.py, migrations/, backends/
    base        queries, models, items, states, errors, config, paths

``docq/__init__.py`` hands names on lazily and belongs to no layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "docq"

LAYERS = [
    "base",
    "database",
    "processing",
    "library",
    "worker",
    "render",
    "tui",
    "web",
    "tools",
    "cli",
    "entry",
]
BASE = {"queries", "models", "items", "states", "errors", "config", "paths"}
DATABASE = {"db", "schema"}
LIBRARY = {
    "queue",
    "intake",
    "leases",
    "maintenance",
    "retry",
    "stats",
    "views",
    "enqueue",
    "export",
    "doctor",
    "copy",
    "upgrade",
}
PACKAGES = {
    "cli": "cli",
    "render": "render",
    "tui": "tui",
    "web": "web",
    "bench": "tools",
    "worker": "worker",
    "processing": "processing",
    "migrations": "database",
    "backends": "database",
}


def layer_of(module: str) -> str | None:
    """The layer of ``docq.x.y``; None for the package's face."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    if parts[0] == "__main__":
        return "entry"
    if parts[0] in PACKAGES:
        return PACKAGES[parts[0]]
    for layer, names in (("base", BASE), ("database", DATABASE), ("library", LIBRARY)):
        if parts[0] in names:
            return layer
    raise AssertionError(f"{module} is in no layer: add it to tests/test_layers.py")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["docq", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(path: Path, known: set[str]) -> dict[str, bool]:
    """The docq modules that ``path`` imports, each with whether it does so at module level
    (True) or only inside a function (False). Imports for type checking only are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _type_checking_only(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                targets.append(candidate if candidate in known else node.module)
        top_level = not _inside_function(node, parents)
        for target in targets:
            if target == "docq" or target.startswith("docq."):
                while target not in known and "." in target:
                    target = target.rsplit(".", 1)[0]
                found[target] = found.get(target, False) or top_level
    return found


def _inside_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return True
    return False


ALL = modules()
GRAPH = {name: imports(path, set(ALL)) for name, path in ALL.items()}


@pytest.mark.parametrize("module", sorted(ALL))
def test_imports_go_down_the_layers(module: str) -> None:
    here = layer_of(module)
    if here is None:
        return
    upward = [
        f"{target} ({layer_of(target)})"
        for target in GRAPH[module]
        if layer_of(target) is not None and LAYERS.index(layer_of(target) or "") > LAYERS.index(here)
    ]
    assert upward == [], f"{module} ({here}) imports a higher layer: {upward}"


def test_no_modules_import_each_other_in_a_loop() -> None:
    """Tarjan's strongly connected components over every import, lazy ones included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, {}):
            if target == "docq":  # the lazy face, which imports nothing itself
                continue
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
                loops.append(sorted(component))

    for name in sorted(GRAPH):
        if name not in index:
            visit(name)
    assert loops == []


def test_render_knows_no_typer_and_the_library_knows_no_cli() -> None:
    for module, path in ALL.items():
        text = path.read_text(encoding="utf-8")
        if layer_of(module) in ("render", "tools", "worker", "library", "processing", "database", "base"):
            assert "import typer" not in text and "from typer" not in text, module


def _loaded_by(statement: str) -> set[str]:
    probe = f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_a_worker_child_loads_no_database_code() -> None:
    loaded = _loaded_by("import docq.worker.child_main")
    heavy = {name for name in loaded if name.split(".")[0] in ("sqlalchemy", "sqlmodel", "psycopg")}
    database = {name for name in loaded if name in ("docq.db", "docq.queue", "docq.schema", "docq.backends")}
    assert heavy == set() and database == set()


def test_the_command_line_loads_no_library_before_a_command_runs() -> None:
    loaded = _loaded_by("import docq.cli")
    assert not {name for name in loaded if name.split(".")[0] in ("sqlalchemy", "sqlmodel", "psycopg")}
    assert not {"docq.queue", "docq.db", "docq.worker.loop", "docq.processing"} & loaded
    assert not {name for name in loaded if name.split(".")[0] in ("textual", "fastapi", "uvicorn")}
