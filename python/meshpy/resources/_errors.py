"""ResourceError, and the translation of pydantic's errors into paths and plain messages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from meshpy.errors import MeshpyError
from meshpy.resources._common import FIELD_ERROR, VALUE_ERROR


class ResourceError(MeshpyError, ValueError):
    """A document was refused: ``path`` names the field, ``message`` says what is wrong.

    ``str(e) == f"{e.path}: {e.message}"`` (just the message when the path is empty, e.g.
    for a YAML syntax error). ``details`` lists every problem found, this one first.
    """

    def __init__(
        self, path: str, message: str, *, details: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.path = path
        self.message = message
        self.details = details or ((path, message),)
        super().__init__(f"{path}: {message}" if path else message)

    def prefixed(self, prefix: str) -> ResourceError:
        """The same error inside a document found at ``prefix`` (e.g. "[1]")."""
        details = tuple((join_path(prefix, p), m) for p, m in self.details)
        return ResourceError(join_path(prefix, self.path), self.message, details=details)


def join_path(path: str, sub: str) -> str:
    """Append a field (``name``) or an index (``[2]``) to a path."""
    if not sub:
        return path
    if not path or sub.startswith("["):
        return path + sub
    return f"{path}.{sub}"


def problems(exc: ValidationError, prefix: str) -> Iterator[tuple[str, str]]:
    for error in exc.errors(include_url=False):
        path = prefix
        for part in error["loc"]:
            if part == "[key]":
                continue
            path = join_path(path, f"[{part}]" if isinstance(part, int) else str(part))
        ctx = error.get("ctx") or {}
        if error["type"] == FIELD_ERROR:
            path = join_path(path, str(ctx["at"]))
        yield path, _message(error)


_SIMPLE_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}

_BOUNDS = {
    "less_than_equal": ("at most", "le"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "greater_than": ("more than", "gt"),
}

_LENGTHS = {
    "too_long": ("at most", "max_length", "must have {} {} item{}, has {}"),
    "too_short": ("at least", "min_length", "must have {} {} item{}, has {}"),
    "string_too_long": ("at most", "max_length", "must be {} {} character{} long"),
    "string_too_short": ("at least", "min_length", "must be {} {} character{} long"),
}


def _message(error: ErrorDetails) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in (FIELD_ERROR, VALUE_ERROR):
        message = str(ctx["message"])
    elif kind == "string_type" and isinstance(value, int | float | bool):
        message = f"must be a string, not the {type_name(value)} {value!r} (quote it in YAML)"
    elif kind in _SIMPLE_MESSAGES:
        message = _SIMPLE_MESSAGES[kind]
    elif kind == "literal_error":
        message = f"must be {ctx['expected']}, not {value!r}"
    elif kind in _LENGTHS:
        words, key, template = _LENGTHS[kind]
        limit = ctx[key]
        message = template.format(words, limit, "" if limit == 1 else "s", ctx.get("actual_length"))
    elif kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        message = f"must be {words} {ctx[key]}, not {value!r}"
    else:
        msg = error["msg"].removeprefix("Value error, ")
        message = msg[:1].lower() + msg[1:]
    return message


def type_name(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}
    return names.get(type(value), "mapping" if isinstance(value, Mapping) else type(value).__name__)
