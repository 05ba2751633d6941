"""The package's layout (ARCHITECTURE.md): imports only go down the pipeline, and no module
imports itself back through others. Read from the source with ast; nothing is imported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rag"


def layers() -> dict[str, int]:
    """The stage packages and their rank, from ARCHITECTURE.md's table (rank 0 at the bottom)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `rag/(\w+)/` \|", text, re.M)
    assert rows, "ARCHITECTURE.md has no layer table"
    return {name: int(rank) for rank, name in rows}


def may_import() -> dict[str, set[str]]:
    """Each stage package's "may import" column: the stage packages its modules may import
    ("nothing of `rag`", a list, or "everything below" its rank)."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `rag/(\w+)/` \| .* \| ([^|]+) \|$", text, re.M)
    ranks = {name: int(rank) for rank, name, _ in rows}
    allowed: dict[str, set[str]] = {}
    for rank, name, column in rows:
        column = column.strip()
        if column.startswith("nothing"):
            allowed[name] = set()
        elif column.startswith("everything below"):
            allowed[name] = {other for other, r in ranks.items() if r < int(rank)}
        else:
            allowed[name] = {part.strip(" `") for part in column.split(",")}
    return allowed


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every ``rag`` module ``path`` imports, at the top, inside functions or for type checking."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rag"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rag":
            found.add(node.module)
            # `from rag.core import defaults` imports the module rag.core.defaults
            found |= {f"{node.module}.{a.name}" for a in node.names if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {i for i in imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}


def stage(module: str) -> str | None:
    """The stage package a module belongs to (None for the top: rag, rag.cli, rag.__main__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in layers()) else None


def test_every_stage_package_is_in_the_table_and_no_module_sits_outside_them() -> None:
    ranks = layers()
    on_disk = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert on_disk == set(ranks)
    top = {m for m in MODULES if stage(m) is None}
    assert top == {"rag", "rag.cli", "rag.__main__"}


def test_imports_only_go_down() -> None:
    ranks = layers()
    upward = []
    for module, targets in GRAPH.items():
        here = stage(module)
        if here is None:
            continue  # the CLI and the public API sit on everything
        for target in targets:
            there = stage(target)
            if there is None or (there != here and ranks[there] >= ranks[here]):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_each_stage_imports_only_what_its_row_says_it_may() -> None:
    allowed = may_import()
    assert set(allowed) == set(layers()) and all(allowed[name] <= set(layers()) for name in allowed)
    outside = []
    for module, targets in GRAPH.items():
        here = stage(module)
        if here is None:
            continue
        for target in targets:
            there = stage(target)
            if there is not None and there != here and there not in allowed[here]:
                outside.append(f"{module} -> {target}")
    assert outside == []


def test_the_may_import_column_is_read_as_written() -> None:
    allowed = may_import()
    assert allowed["core"] == set() and allowed["ingest"] == {"core"}
    assert allowed["serve"] == {name for name, rank in layers().items() if rank < layers()["serve"]}  # "everything below"


def test_no_import_cycles() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The graph reader sees top-level, function-level and `from package import module` imports."""
    source = tmp_path / "m.py"
    source.write_text("from rag.core import defaults\n\ndef f():\n    import rag.answer.trust\n")
    assert imports(source) >= {"rag.core.defaults", "rag.answer.trust"}
