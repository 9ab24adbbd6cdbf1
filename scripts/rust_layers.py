"""Fail on an import cycle in a Rust crate, or on a layer using one above it (``make lint``).

A module depends on another when its code names it by a ``crate::`` path (``use`` trees
with braces included) or, from a top-level file, by ``super::``. Modules are counted at
two depths: the top level (``src/a.rs`` with everything under ``src/a/``) and, inside a
folder module, each of its children (``src/a/b.rs`` with ``src/a/b/``). Test code is left
out: files named ``tests.rs`` or ``*_tests.rs``, and an inline ``#[cfg(test)] mod tests``
to the end of its file.

Two modules that depend on each other, directly or around a longer circle, are reported
with the names that tie them. A crate may also list its layers in ``Cargo.toml``, top
first; a top-level module may then use only modules of its own layer or of those below:

    [package.metadata.layers]
    order = [["proxy", "admin"], ["server"], ["policy"], ["error", "config"]]

Every top-level module must be in a layer. The exit status is 1 on any finding.

    python scripts/rust_layers.py crates/proxy-config crates/proxy-core
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

_CRATE = re.compile(r"\bcrate::")
_SUPER_PATH = re.compile(r"\bsuper::(\w+)")
_INLINE_TESTS = re.compile(r"^#\[cfg\(test\)\]\s*\nmod tests \{", re.MULTILINE)
_COMMENT = re.compile(r"//.*$", re.MULTILINE)
_WORD = re.compile(r"\w+")

Graph = dict[str, dict[str, set[str]]]
"""module -> module it depends on -> the names that tie them."""


def module_graph(crate: Path, depth: int = 1) -> Graph:
    """The dependencies between the crate's modules, counted ``depth`` levels deep (1 or 2)."""
    src = crate / "src"
    folders = {p.name for p in src.iterdir() if p.is_dir()} if depth > 1 else set()
    graph: Graph = defaultdict(lambda: defaultdict(set))
    for path in sorted(src.rglob("*.rs")):
        relative = path.relative_to(src)
        if path.name == "tests.rs" or path.stem.endswith("_tests"):
            continue
        if relative.parts in (("lib.rs",), ("main.rs",)):
            continue
        parts = [part.removesuffix(".rs") for part in relative.parts]
        module = _name(parts, folders)
        text = _COMMENT.sub("", path.read_text())
        inline_tests = _INLINE_TESTS.search(text)
        if inline_tests:
            text = text[: inline_tests.start()]
        graph[module]  # a module that depends on nothing is still a module
        for segments in crate_paths(text):
            target = _name(segments, folders)
            if target != module and target.split("::")[0] != module:
                graph[module][target].add("::".join(segments[target.count("::") + 1 :]))
        if len(parts) <= 2:
            # super:: of a top-level file is the crate root, of a folder's child its folder.
            parent = parts[:-1]
            for found in _SUPER_PATH.finditer(text):
                target = _name([*parent, found.group(1)], folders)
                if target != module:
                    graph[module][target].add("")
    return graph


def _name(segments: list[str], folders: set[str]) -> str:
    """The module ``segments`` (a path from the crate root) falls in."""
    if len(segments) > 1 and segments[0] in folders:
        return f"{segments[0]}::{segments[1]}"
    return segments[0]


def crate_paths(text: str) -> list[list[str]]:
    """The segments of every ``crate::`` path, ``use`` trees expanded."""
    found: list[list[str]] = []
    for match in _CRATE.finditer(text):
        _use_tree(text, match.end(), [], found)
    return found


def _use_tree(text: str, at: int, prefix: list[str], found: list[list[str]]) -> int:
    """Reads the use tree at ``at`` after ``prefix``; returns where it ends."""
    segments = list(prefix)
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if text.startswith("{", at):
            at += 1
            while True:
                at = _use_tree(text, at, segments, found)
                while at < len(text) and text[at] in " \t\n,":
                    at += 1
                if at >= len(text) or text[at] == "}":
                    return at + 1
        word = _WORD.match(text, at)
        if not word:
            break
        segments.append(word.group())
        at = word.end()
        if not text.startswith("::", at):
            break
        at += 2
    if len(segments) > len(prefix):
        found.append(segments)
    return at


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


def layers(crate: Path) -> list[list[str]]:
    """The crate's layers from ``[package.metadata.layers]``, top first (none: ``[]``)."""
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    order: list[list[str]] = (
        manifest.get("package", {}).get("metadata", {}).get("layers", {}).get("order", [])
    )
    return order


def layer_violations(graph: Graph, order: list[list[str]]) -> list[str]:
    """Each top-level module outside every layer, and each use of a module in a higher layer."""
    rank = {module: i for i, layer in enumerate(order) for module in layer}
    found = [f"{module} is in no layer" for module in sorted(graph) if module not in rank]
    for module, targets in sorted(graph.items()):
        for target, names in sorted(targets.items()):
            if module in rank and target in rank and rank[target] < rank[module]:
                tied = ", ".join(sorted(n for n in names if n)) or "-"
                found.append(f"{module} uses {target}, a layer above it: {tied}")
    return found


def main(argv: list[str] | None = None) -> int:
    """Check each crate given; print every finding and return 1 if there is one."""
    crates = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    status = 0
    for crate in crates:
        for depth in (1, 2):
            graph = module_graph(crate, depth)
            for members in cycles(graph):
                status = 1
                print(f"{crate}: modules import one another: {', '.join(members)}", file=sys.stderr)
                for a in members:
                    for b in members:
                        if b in graph[a]:
                            names = ", ".join(sorted(n for n in graph[a][b] if n)) or "-"
                            print(f"  {a} -> {b}: {names}", file=sys.stderr)
        order = layers(crate)
        if order:
            for finding in layer_violations(module_graph(crate), order):
                status = 1
                print(f"{crate}: {finding}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
