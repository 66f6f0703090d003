"""The structure the code keeps (issue #11), checked on every run from the source's imports.

- The core (``chatsla.core``) is plain Python: the standard library, orjson and tzdata only, so
  the same rules serve the worker, the audit and the tests without Kafka or Faust.
- No module imports another module's private name (``_x``): a private name is free to change.
- The packages form layers without cycles: core at the bottom; schemas and projections on it;
  streams (the Kafka and Faust adapters) on those; the application (CLI, audit, replay, demo) on
  top; dev (the local broker) beside it.
- Nothing imports the repository's folders under their generic top-level names (``streams``,
  ``schemas``, ``projections``): they install as ``chatsla.streams`` and so on (pyproject.toml).
- Kafka client libraries are imported by the adapters only (``chatsla.streams``: the worker, the
  offline reader, the producer and the admin helpers); ``KAFKA_ELSEWHERE`` is empty (issue #11).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# repository folder -> the package it installs as (pyproject.toml, [tool.setuptools.package-dir])
FOLDERS = {"chatsla": "chatsla", "streams": "chatsla.streams", "schemas": "chatsla.schemas",
           "projections": "chatsla.projections"}
KAFKA = {"kafka", "aiokafka", "faust", "mode"}
KAFKA_ELSEWHERE: set[str] = set()  # issue #11 moved every Kafka client under chatsla.streams
CORE_MAY_IMPORT = {"orjson", "tzdata"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


MODULES = modules()


def imports(path: Path, module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import, at any depth."""
    out = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            out += [(base, a.name, node.lineno) for a in node.names]
    return out


def layer(module: str) -> str | None:
    """The package a project module belongs to; None for the root package itself."""
    if module == "chatsla":
        return None
    if module == "chatsla.dev.cli":
        return "app"  # the `chatsla dev` command: part of the command line, not of the broker
    parts = module.split(".")
    if parts[1] in ("core", "dev", "streams", "schemas", "projections"):
        return parts[1]
    return "app"


def resolve(name: str, imported: str | None) -> str | None:
    """The project module an import refers to (``from chatsla.core import engine`` -> the engine)."""
    if imported is not None and f"{name}.{imported}" in MODULES:
        return f"{name}.{imported}"
    return name if name in MODULES else None


def test_the_core_imports_only_the_standard_library_orjson_and_tzdata() -> None:
    bad = []
    for module, path in MODULES.items():
        if layer(module) != "core":
            continue
        for name, _, line in imports(path, module):
            top = name.split(".")[0]
            if name.startswith("chatsla.core") or top in sys.stdlib_module_names or top in CORE_MAY_IMPORT:
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


def test_no_module_imports_another_modules_private_name() -> None:
    bad = []
    for module, path in MODULES.items():
        for name, imported, line in imports(path, module):
            if name.split(".")[0] not in ("chatsla", *FOLDERS) or imported is None:
                continue
            private = imported.startswith("_") and not imported.startswith("__")
            if private and name != module:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {imported} from {name}")
    assert bad == []


def test_the_packages_form_layers_without_cycles() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        src = layer(module)
        for name, imported, _ in imports(path, module):
            target = resolve(name, imported)
            dst = layer(target) if target is not None else None
            if src is not None and dst is not None and dst != src:
                graph[src].add(dst)
    # depth-first search for a cycle
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]) if nxt in trail else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], graph
    assert "app" not in graph["streams"] and not graph["core"]  # the layers as documented


def test_nothing_imports_the_folders_under_generic_top_level_names() -> None:
    bad = []
    for path in sorted(ROOT.glob("**/*.py")):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue  # .venv and the like
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for name, _, line in imports(path, module):
            if name.split(".")[0] in ("streams", "schemas", "projections"):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


def test_kafka_libraries_are_imported_by_the_adapters_only() -> None:
    bad = []
    for module, path in MODULES.items():
        if layer(module) == "streams" or module in KAFKA_ELSEWHERE:
            continue
        for name, _, line in imports(path, module):
            if name.split(".")[0] in KAFKA:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bad == []


def test_the_checks_see_the_code() -> None:
    """The checks above are only as good as the module list: it must hold the known modules."""
    for module in ("chatsla.core.engine", "chatsla.streams.app", "chatsla.schemas.decode", "chatsla.cli",
                   "chatsla.projections.weekly", "chatsla.dev.broker"):
        assert module in MODULES
    engine = imports(MODULES["chatsla.core.engine"], "chatsla.core.engine")
    assert any(name == "chatsla.core.sessions" for name, _, _ in engine)
