"""DESIGN's one-way layers, read from the source with ``ast`` (every import statement, lazy ones
inside functions and TYPE_CHECKING ones included):

    cli -> serve -> infer/training/export -> degradation/nets/losses/weights/io/data/metrics
        -> config -> errors/paths/seeds/allocator -> torch

An import may go down the layers or stay in its layer, never up; ``nets`` imports nothing from
``weights``/``infer``/``training``/``cli`` (a network class is the upstream computation, nothing
about files); ``infer`` never imports ``training``; and the subpackages import each other without
cycles.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "resrgan"

# top-level modules and subpackages of resrgan -> layer (higher may import lower, never upward)
LAYERS: dict[str, int] = {
    "__main__": 7,
    "cli": 6,
    "serve": 5,
    "infer": 4,
    "training": 4,
    "export": 4,
    "degradation": 3,
    "nets": 3,
    "losses": 3,
    "weights": 3,
    "io": 3,
    "data": 3,
    "metrics": 3,
    "config": 2,
    "errors": 1,
    "paths": 1,
    "seeds": 1,
    "allocator": 1,
    "color": 1,
    # the package itself: its public names load lazily by name (no import statements), so
    # anything may import from it (cli takes __version__)
    "": 0,
}

# (importing file, imported subpackage): known violations, each with the reason and the fix
ALLOWED: dict[tuple[str, str], str] = {}

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "nets": ("weights", "infer", "training", "cli", "serve", "export"),
    "infer": ("training",),
    "degradation": ("training",),
}


def _subpackage(module: str) -> str:
    """'resrgan.infer.engine' -> 'infer'; 'resrgan' or a name in the package root -> ''."""
    parts = module.split(".")
    if len(parts) < 2:
        return ""
    top = parts[1]
    return top if (SRC / top).is_dir() or (SRC / f"{top}.py").is_file() else ""


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute resrgan module, line) for every import statement of one file."""
    rel = path.relative_to(SRC.parent).with_suffix("").parts
    package = list(rel if path.name == "__init__.py" else rel[:-1])
    if package[-1:] == ["__init__"]:
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                if node.module:
                    names = [f"{base}.{node.module}"]
                else:
                    names = [f"{base}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
        else:
            continue
        found += [(n, node.lineno) for n in names if n == "resrgan" or n.startswith("resrgan.")]
    return found


@functools.cache
def _edges() -> list[tuple[str, str, str, int]]:
    """(importing file relative to src/resrgan, its subpackage, imported subpackage, line)."""
    edges = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        here = _subpackage("resrgan." + rel.removesuffix(".py").replace("/", "."))
        for target, line in _imports(path):
            there = _subpackage(target)
            if there != here:
                edges.append((rel, here, there, line))
    return edges


def test_every_subpackage_has_a_layer() -> None:
    tops = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    tops |= {p.stem for p in SRC.glob("*.py") if p.name != "__init__.py"}
    assert sorted(tops - set(LAYERS)) == [], f"give them a layer in LAYERS ({__file__})"


def test_no_import_goes_up_the_layers() -> None:
    up = [
        f"{rel}:{line} ({here}, layer {LAYERS[here]}) imports {there} (layer {LAYERS[there]})"
        for rel, here, there, line in _edges()
        if LAYERS[there] > LAYERS[here] and (rel, there) not in ALLOWED
    ]
    assert up == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_forbidden_imports(package: str) -> None:
    bad = [
        f"{rel}:{line} imports {there}"
        for rel, here, there, line in _edges()
        if here == package and there in FORBIDDEN[package] and (rel, there) not in ALLOWED
    ]
    assert bad == []


def test_no_cycles_between_subpackages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for rel, here, there, _line in _edges():
        if (rel, there) not in ALLOWED and here and there:
            graph[here].add(there)
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif len(path) < len(LAYERS):
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


def test_allow_list_entries_are_still_needed() -> None:
    """An entry whose import is gone must leave the list (so the list stays true)."""
    present = {(rel, there) for rel, _here, there, _line in _edges()}
    assert [k for k in ALLOWED if k not in present] == []


def test_the_checker_sees_relative_and_lazy_imports() -> None:
    """The parser itself: relative imports resolve to absolute modules, and an import inside a
    function counts."""
    engine = {m for m, _line in _imports(SRC / "infer" / "engine.py")}
    assert {"resrgan.nets", "resrgan.infer.fastrrdb", "resrgan.errors"} <= engine
    upscaler = {m for m, _line in _imports(SRC / "infer" / "upscaler.py")}
    assert "resrgan.infer.legacy" in upscaler  # lazy, in the module's __getattr__
