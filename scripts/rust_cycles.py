"""Fail on an import cycle between the top-level modules of a Rust crate (``make lint``).

A module ``a`` (``src/a.rs`` and everything under ``src/a/``) depends on ``b`` when its
code names ``crate::b``, or ``super::b`` from ``src/a.rs``. Test code is left out: files
named ``tests.rs`` or ``*_tests.rs``, and an inline ``#[cfg(test)] mod tests`` to the end
of its file. Two modules that depend on each other, directly or around a longer circle,
are reported with the names that tie them, and the exit status is 1.

    python scripts/rust_cycles.py crates/proxy-config crates/proxy-core
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

_CRATE_PATH = re.compile(r"\bcrate::(\w+)(?:::(\w+|\{[^}]*\}))?")
_CRATE_GROUP = re.compile(r"\bcrate::\{")
_SUPER_PATH = re.compile(r"\bsuper::(\w+)")
_INLINE_TESTS = re.compile(r"^#\[cfg\(test\)\]\s*\nmod tests \{", re.MULTILINE)
_COMMENT = re.compile(r"//.*$", re.MULTILINE)

Graph = dict[str, dict[str, set[str]]]
"""module -> module it depends on -> the names that tie them."""


def module_graph(crate: Path) -> Graph:
    """The dependencies between the top-level modules of the crate at ``crate``."""
    src = crate / "src"
    graph: Graph = defaultdict(lambda: defaultdict(set))
    for path in sorted(src.rglob("*.rs")):
        relative = path.relative_to(src)
        if path.name == "tests.rs" or path.stem.endswith("_tests"):
            continue
        if relative.parts in (("lib.rs",), ("main.rs",)):
            continue
        module = relative.parts[0].removesuffix(".rs")
        text = _COMMENT.sub("", path.read_text())
        inline_tests = _INLINE_TESTS.search(text)
        if inline_tests:
            text = text[: inline_tests.start()]
        graph[module]  # a module that depends on nothing is still a module
        for target, name in _crate_paths(text):
            if target != module:
                graph[module][target].add(name)
        if len(relative.parts) == 1:  # super:: of a top-level file is the crate root
            for found in _SUPER_PATH.finditer(text):
                if found.group(1) != module:
                    graph[module][found.group(1)].add("")
    return graph


def _crate_paths(text: str) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``crate::module::name`` and ``crate::{module::name, ..}``."""
    found = [(m.group(1), (m.group(2) or "").strip("{}")) for m in _CRATE_PATH.finditer(text)]
    for group in _CRATE_GROUP.finditer(text):
        depth, start = 1, group.end()
        end = start
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        items, depth, item = [], 0, ""
        for char in text[start : end - 1]:
            if char == "," and depth == 0:
                items.append(item)
                item = ""
                continue
            depth += {"{": 1, "}": -1}.get(char, 0)
            item += char
        items.append(item)
        for entry in items:
            head, _, rest = entry.strip().partition("::")
            if head.isidentifier():
                found.append((head, rest.strip("{} ")))
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """Each set of modules that reach one another (strongly connected), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    """Check each crate given; print every cycle and return 1 if there is one."""
    crates = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    status = 0
    for crate in crates:
        graph = module_graph(crate)
        for members in cycles(graph):
            status = 1
            print(f"{crate}: modules import one another: {', '.join(members)}", file=sys.stderr)
            for a in members:
                for b in members:
                    if b in graph[a]:
                        names = ", ".join(sorted(n for n in graph[a][b] if n)) or "-"
                        print(f"  {a} -> {b}: {names}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
