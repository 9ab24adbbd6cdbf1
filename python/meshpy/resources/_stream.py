"""Reading YAML streams and JSON into documents, then resources."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from meshpy.resources._document import Resource, parse
from meshpy.resources._errors import ResourceError


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if isinstance(key, str | int | float | bool) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _load(text: str) -> list[object]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError:
            pass  # maybe YAML flow style; the YAML parser explains what is wrong
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ResourceError("", f"invalid YAML: {problem}{where}") from None


def _documents(text: str) -> Iterator[tuple[str, object]]:
    loaded = _load(text)
    if len(loaded) == 1 and isinstance(loaded[0], list):
        loaded = loaded[0]
        single_list = True
    else:
        single_list = False
    for i, doc in enumerate(loaded):
        if isinstance(doc, list) and not single_list:
            for j, item in enumerate(doc):
                yield f"[{i}][{j}]", item
        elif isinstance(doc, Mapping) and doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise ResourceError(f"[{i}].items", "a List needs a list of items")
            for j, item in enumerate(items):
                yield f"[{i}].items[{j}]", item
        else:
            yield f"[{i}]", doc


def parse_stream(text: str) -> list[Resource]:
    """Parse a YAML stream (documents separated by ``---``) or a JSON object or list.

    Empty documents are skipped, and a ``kind: List`` is read as its items. Every document
    is checked before anything is returned: the first problem raises ResourceError with
    its path prefixed by the document's index ("[1].spec.rules[0]..."), ``details`` lists
    the problems of all documents.
    """
    resources: list[Resource] = []
    errors: list[ResourceError] = []
    for prefix, doc in _documents(text):
        if doc is None:
            continue
        try:
            resources.append(parse(doc))  # type: ignore[arg-type]
        except ResourceError as exc:
            errors.append(exc.prefixed(prefix))
    if errors:
        first = errors[0]
        details = tuple(d for e in errors for d in e.details)
        raise ResourceError(first.path, first.message, details=details)
    return resources
