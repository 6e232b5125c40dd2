"""The shape of the code, checked: layers point down, no import cycles, heavy imports stay lazy.

Imports are read from the source (every `import`, at module level or inside a function),
so a cycle dodged by importing inside a function still counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .support.environment import REPO

PACKAGE = REPO / "healthinfra"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def runtime_nodes(tree: ast.AST):
    """Every node, except under `if TYPE_CHECKING:` (those imports never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (n for child in node.orelse for n in [child, *runtime_nodes(child)])
            continue
        yield node
        yield from runtime_nodes(node)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, resolved to dotted names (relative imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        edges[name] = {m for m in imports_of(path) if m in modules and m != name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_engine_never_imports_the_playbooks():
    offenders = sorted(
        f"{module_name(p)} imports {m}"
        for p in PACKAGE.rglob("*.py")
        for m in imports_of(p)
        if m == "playbooks" or m.startswith("playbooks.")
    )
    assert offenders == []


def test_there_is_no_import_cycle_even_through_imports_inside_functions():
    edges = graph()
    # a package's __init__ importing its own submodules is how it offers them, not a cycle of ideas
    for name in list(edges):
        edges[name] = {m for m in edges[name] if not (name.startswith(m + ".") and m in edges)}
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_provider_names_appear_only_in_the_providers():
    import re

    spelled = re.compile(r"""["'](neon|embedded|moto|railway|ssh)["']""")
    offenders = []
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "playbooks").glob("*.py"), REPO / "tasks.py"]:
        if path.is_relative_to(PACKAGE / "providers"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if spelled.search(line) and "Step(" not in line and "area_collection(" not in line:
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    # the one exception: `runs_on: railway` is how services.yml says "on the hosting platform"
    assert [o for o in offenders if "RUNS_ON_PLATFORM, RUNS_ON_OWN_HOST" not in o] == []


def test_listing_the_tasks_imports_nothing_heavy():
    probe = (
        "import sys, runpy; sys.argv = ['invoke', '--list'];"
        "from invoke.main import program; import io, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: program.run(['invoke', '--list'], exit=False)\n"
        "    except SystemExit: pass\n"
        "heavy = sorted(m for m in ('boto3', 'botocore', 'psycopg', 'fabric', 'httpx', 'jinja2') if m in sys.modules)\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_no_module_of_the_engine_is_over_400_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
