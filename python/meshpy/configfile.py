"""Read a proxy config file (YAML or JSON) and split it into bootstrap, snapshot and identity.

This module stays light on purpose (json, PyYAML and the config's generated types): it is on
the path of ``meshpy proxy run``, where the Rust core does the validating. The optional top-level
``identity: {cert_chain, key, roots}`` names PEM files (relative to the config file); the
core vets their content in ``set_identity``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshpy.errors import MeshpyError
from meshpy.proxyconfig import Bootstrap

__all__ = [
    "BOOTSTRAP_KEYS",
    "IDENTITY_KEY",
    "ConfigFileError",
    "IdentityFiles",
    "IdentityPem",
    "ProxyFile",
    "load",
    "parse",
    "split",
]

BOOTSTRAP_KEYS = tuple(Bootstrap.__annotations__)
"""Top-level keys that configure the process (fixed until restart); the rest is the snapshot.
They are the keys of the core's bootstrap type, so a new one needs no change here."""

IDENTITY_KEY = "identity"
"""Top-level key naming the identity's PEM files; neither bootstrap nor snapshot."""

_IDENTITY_FIELDS = ("cert_chain", "key", "roots")


class ConfigFileError(MeshpyError):
    """The file could not be read or parsed; ``str(e)`` is one line without the file name."""


@dataclass(frozen=True)
class IdentityPem:
    """The content of the identity files, for ``_core.Proxy.set_identity``."""

    cert_chain: str
    key: str
    roots: str


@dataclass(frozen=True)
class IdentityFiles:
    """Where the proxy's certificate chain, private key and trust roots are (PEM files)."""

    cert_chain: Path
    key: Path
    roots: Path

    @classmethod
    def resolve(cls, value: object, base: Path | None) -> IdentityFiles:
        """Check an ``identity`` mapping and resolve its relative paths against ``base``."""
        if not isinstance(value, dict):
            msg = f"{IDENTITY_KEY}: expected a mapping with cert_chain, key and roots"
            raise ConfigFileError(msg)
        unknown = sorted(str(k) for k in value if k not in _IDENTITY_FIELDS)
        if unknown:
            msg = f"{IDENTITY_KEY}.{unknown[0]}: unknown field, expected cert_chain, key or roots"
            raise ConfigFileError(msg)
        paths: dict[str, Path] = {}
        for name in _IDENTITY_FIELDS:
            path = value.get(name)
            if not isinstance(path, str) or not path:
                what = "missing" if path is None else "must be a file path"
                raise ConfigFileError(f"{IDENTITY_KEY}.{name}: {what}")
            paths[name] = (base or Path()) / path
        return cls(**paths)

    def read(self) -> IdentityPem:
        """Read the three files; raise ConfigFileError naming the one that failed."""
        texts: dict[str, str] = {}
        for name in _IDENTITY_FIELDS:
            path: Path = getattr(self, name)
            try:
                texts[name] = path.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigFileError(f"{IDENTITY_KEY}.{name}: {path}: {reason}") from exc
        return IdentityPem(**texts)


@dataclass(frozen=True)
class ProxyFile:
    """A config file's content, split into the bootstrap, the snapshot and the identity files."""

    bootstrap: dict[str, Any]
    snapshot: dict[str, Any]
    identity: IdentityFiles | None = None

    def bootstrap_json(self) -> str:
        """Return the JSON for ``_core.Proxy(...)``."""
        return json.dumps(self.bootstrap)

    def snapshot_json(self) -> str:
        """Return the JSON for ``_core.Proxy.apply(...)``."""
        return json.dumps(self.snapshot)


def load(path: str | Path) -> ProxyFile:
    """Read and parse the file at ``path``; raise ConfigFileError if that fails."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigFileError(reason) from exc
    return parse(text, as_json=_looks_like_json(path, text), base=path.parent)


def parse(text: str, *, as_json: bool = False, base: Path | None = None) -> ProxyFile:
    """Parse a config document (YAML unless ``as_json``) and split it; relative identity
    paths are resolved against ``base`` (the config file's directory)."""
    data = _parse_json(text) if as_json else _parse_yaml(text)
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        msg = f"expected a mapping at the top level (listeners, clusters, ...), got {kind}"
        raise ConfigFileError(msg)
    return split(data, base)


def split(data: Mapping[Any, Any], base: Path | None = None) -> ProxyFile:
    """Split a config's top level into bootstrap, snapshot and identity files (resolved
    against ``base``); the values are not checked, the core does that."""
    bad_keys = [key for key in data if not isinstance(key, str)]
    if bad_keys:
        msg = f"top-level keys must be strings, got {bad_keys[0]!r}"
        raise ConfigFileError(msg)
    bootstrap = {k: v for k, v in data.items() if k in BOOTSTRAP_KEYS}
    snapshot = {k: v for k, v in data.items() if k not in (*BOOTSTRAP_KEYS, IDENTITY_KEY)}
    files = data.get(IDENTITY_KEY)
    identity = None if files is None else IdentityFiles.resolve(files, base)
    return ProxyFile(bootstrap=bootstrap, snapshot=snapshot, identity=identity)


def _looks_like_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return False
    return suffix == ".json" or text.lstrip().startswith("{")


def _parse_json(text: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        msg = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise ConfigFileError(msg) from exc


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            msg = f"duplicate key {key!r}"
            raise ConfigFileError(msg)
        out[key] = value
    return out


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type, misc]
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                mark = key_node.start_mark
                msg = f"line {mark.line + 1}, column {mark.column + 1}: duplicate key {key!r}"
                raise ConfigFileError(msg)
            seen.add(key)
        result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return result


def _parse_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigFileError(f"{where}{exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigFileError(str(exc)) from exc
