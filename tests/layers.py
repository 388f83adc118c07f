"""Checks that src/ follows the direction of use that src/lib.rs states.

src/lib.rs holds a ```text block of lines `module -> dep dep ...`: each
top-level module may use (through `crate::dep`) only the modules listed
after its arrow. Every `crate::X` path outside comments is collected per
top-level module; a use that the list does not allow, a module missing
from the list, or a cycle in the list fails with the offending file and
line. Run by tests/run.sh:

    python3 tests/layers.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def stated_graph() -> dict[str, set[str]]:
    text = (SRC / "lib.rs").read_text()
    block = re.search(r"//! ```text\n(.*?)//! ```", text, re.S)
    if not block:
        sys.exit("src/lib.rs: no ```text block with the module graph")
    graph: dict[str, set[str]] = {}
    for line in block.group(1).splitlines():
        line = line.removeprefix("//!").strip()
        if not line:
            continue
        name, _, deps = line.partition("->")
        graph[name.strip()] = set(deps.split())
    return graph


def uses() -> dict[str, list[tuple[str, Path, int]]]:
    found: dict[str, list[tuple[str, Path, int]]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(SRC)
        module = rel.parts[0].removesuffix(".rs")
        if module in ("lib", "main"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//", 1)[0]
            for m in re.finditer(r"\bcrate::([a-z_][a-z_0-9]*)", code):
                dep = m.group(1)
                if dep != module:
                    found.setdefault(module, []).append((dep, path, n))
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    out, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                out.append(stack[stack.index(dep):] + [dep] if dep in stack else [node, dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return out


def main() -> int:
    graph = stated_graph()
    modules = {p.stem if p.is_file() else p.name for p in SRC.iterdir()} - {"lib", "main"}
    errors = []
    for m in sorted(modules - graph.keys()):
        errors.append(f"src/{m}: not in src/lib.rs's module graph")
    for m, deps in graph.items():
        for d in sorted(deps - graph.keys()):
            errors.append(f"src/lib.rs: {m} -> {d}, but there is no module {d}")
    for c in cycles(graph):
        errors.append("src/lib.rs: the graph has a cycle: " + " -> ".join(c))
    for m, found in sorted(uses().items()):
        allowed = graph.get(m, set())
        for dep, path, n in found:
            if dep not in allowed:
                errors.append(f"{path.relative_to(ROOT)}:{n}: {m} uses crate::{dep}, which src/lib.rs does not allow")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"layers: {len(graph)} modules follow src/lib.rs's graph", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
