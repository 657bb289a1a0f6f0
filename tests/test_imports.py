"""The project's layers, read from the source with :mod:`ast` (nothing is imported, no torch):

* ``utils`` imports nothing from ``models`` or ``engine`` (the lowest layer: models, engine,
  data sets, evaluation and the tools build on it, never the other way);
* no import cycle between the project's modules.

Every ``import``/``from ... import`` statement counts wherever it stands: at the top of a
module, inside a function (a lazy import that closes a cycle is still a cycle: it only moves
the failure from import time to call time), and inside ``if TYPE_CHECKING:`` blocks too (an
annotation that needs the other module is a dependency on it; none is needed, so the strict
rule costs nothing). Imports by string (``importlib.import_module``) are not seen.

An edge goes to the module named: ``from a.b import c`` to ``a.b.c`` when that is a module,
else to ``a.b``; importing ``a.b`` does not add an edge to the package ``a`` (its
``__init__`` re-exporting its own submodules is not a cycle). Project modules are every
``.py`` file of the checkout, named by their path from the root (``scripts/visualize.py`` is
``scripts.visualize``; ``tests/`` files by their path too, with ``tests/`` also on the path
as pytest puts it for the test files' own imports).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"__pycache__", ".git", "outputs", "data", "runs", "node_modules"}


def module_name(path: Path) -> str:
    """``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every ``.py`` file of the checkout by its module name."""
    mods: dict[str, Path] = {}
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel[:-1]):
            continue
        mods[module_name(p)] = p
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The longest prefix of dotted ``name`` that is a project module, if any."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in mods:
            return cand
    return None


def imports_of(mod: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The project modules that ``mod`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    package = mod if is_pkg else mod.rpartition(".")[0]
    # A test file's sibling modules (``from faults.common import ...``) resolve under tests/.
    prefixes = [""] + (["tests."] if mod.startswith("tests.") else [])
    out: set[str] = set()

    def add(name: str) -> None:
        for pre in prefixes:
            target = _resolve(pre + name, mods)
            if target is not None:
                if target != mod:
                    out.add(target)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                if full in mods or any(pre + full in mods for pre in prefixes[1:]):
                    add(full)
                elif base:
                    add(base)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {m: imports_of(m, p, mods) for m, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {m: WHITE for m in graph}
    for start in sorted(graph):
        if color[start] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        color[start] = GREY
        path = [start]
        while stack:
            node, todo = stack[-1]
            if not todo:
                color[node] = BLACK
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop(0)
            if color.get(nxt, BLACK) == GREY:
                return path[path.index(nxt):] + [nxt]
            if color.get(nxt) == WHITE:
                color[nxt] = GREY
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def _layer(mod: str) -> str:
    return mod.split(".")[0]


def test_graph_sees_the_project():
    """The walk finds the packages and resolves known imports (guards against a vacuous pass)."""
    graph = import_graph()
    for m in ("utils.config", "models", "engine.inference", "engine.pseudo_labels", "test",
              "segment_video.pipeline", "evaluation.davis"):
        assert m in graph, m
    assert any(_layer(t) == "utils" for t in graph["engine.inference"])
    assert any(_layer(t) == "models" for t in graph["test"])


def test_utils_imports_no_models_or_engine():
    graph = import_graph()
    bad = sorted(f"{m} -> {t}" for m, targets in graph.items() if _layer(m) == "utils"
                 for t in targets if _layer(t) in ("models", "engine"))
    assert not bad, "utils/ must not import models/ or engine/:\n" + "\n".join(bad)


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
