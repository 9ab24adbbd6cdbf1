"""The data plane in this process: ``Proxy`` over ``_core``, and the core's config validation.

A config is plain JSON data whose types are in ``meshpy.proxyconfig`` (TypedDicts generated
from the JSON Schema that the Rust config types derive). There is one validator, the
core's: ``check_bootstrap``, ``check_snapshot`` and ``check_config`` run it without starting
anything and raise ``_core.ConfigError``, whose ``path`` names the field at fault
(``clusters[0].lb``). ``python -m meshpy.dataplane --schema`` prints the JSON Schema of a
config file (api/proxy-config.schema.json).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias, TypedDict, cast

from meshpy import _core
from meshpy.configfile import ProxyFile, split
from meshpy.proxyconfig import Bootstrap, ProxyConfig, Snapshot

__all__ = [
    "Bootstrap",
    "CertificateInfo",
    "Proxy",
    "ProxyConfig",
    "Snapshot",
    "check_bootstrap",
    "check_config",
    "check_snapshot",
    "json_schema",
]

_Document: TypeAlias = Mapping[str, Any] | str


def _as_json(document: _Document | None) -> str:
    if document is None:
        return "{}"
    return document if isinstance(document, str) else json.dumps(document)


def check_bootstrap(bootstrap: Bootstrap | _Document) -> None:
    """Raise ``_core.ConfigError`` unless ``Proxy(bootstrap)`` would take it."""
    _core.check_bootstrap(_as_json(bootstrap))


def check_snapshot(snapshot: Snapshot | _Document) -> None:
    """Raise ``_core.ConfigError`` unless ``Proxy.apply(snapshot)`` would take it."""
    _core.check_snapshot(_as_json(snapshot))


def check_config(config: ProxyConfig | Mapping[str, Any], base: Path | None = None) -> ProxyFile:
    """Check a whole config (bootstrap, snapshot and identity keys) and return it split.

    Raises ``_core.ConfigError`` for the bootstrap or snapshot, ``ConfigFileError`` for
    the identity files' paths (resolved against ``base``; they are not read).
    """
    parts = split(config, base)
    _core.check_bootstrap(parts.bootstrap_json())
    _core.check_snapshot(parts.snapshot_json())
    return parts


class CertificateInfo(TypedDict):
    """What a certificate says: ``Proxy.set_identity`` returns it for the proxy's own."""

    identity: str | None
    not_before: float
    not_after: float
    serial: str
    issuer: str
    subject: str
    is_ca: bool


class Proxy:
    """A data plane proxy in this process; threads and sockets are owned by the Rust core.

    ``with Proxy(bootstrap, snapshot) as p:`` starts it and shuts it down on exit.
    Errors are the ``_core`` exceptions: ConfigError, BindError, IdentityError, StateError.
    """

    def __init__(
        self,
        bootstrap: Bootstrap | _Document | None = None,
        snapshot: Snapshot | _Document | None = None,
        *,
        grace_s: float = 10.0,
    ) -> None:
        """Create a stopped proxy and, if given, apply ``snapshot`` (validated, not bound)."""
        self._inner = _core.Proxy(_as_json(bootstrap))
        self.grace_s = grace_s
        if snapshot is not None:
            self.apply(snapshot)

    @classmethod
    def from_config(
        cls,
        config: ProxyConfig | Mapping[str, Any],
        *,
        grace_s: float = 10.0,
        base: Path | None = None,
    ) -> Self:
        """Create a proxy from a whole config (bootstrap, snapshot and identity together).

        Relative identity paths are resolved against ``base`` (default: the working directory).
        """
        parts = split(config, base)
        proxy = cls(parts.bootstrap_json(), grace_s=grace_s)
        if parts.identity is not None:
            pem = parts.identity.read()
            proxy.set_identity(pem.cert_chain, pem.key, pem.roots)
        proxy.apply(parts.snapshot_json())
        return proxy

    def start(self) -> dict[str, str]:
        """Bind the admin listener and listeners; return ``{name: "ip:port"}``."""
        return self._inner.start()

    def apply(self, snapshot: Snapshot | _Document) -> int:
        """Validate and swap in a new snapshot; return the applied version."""
        return self._inner.apply(_as_json(snapshot))

    def addresses(self) -> dict[str, str]:
        """Return the bound addresses, ``{"admin": ..., "<listener>": ...}``."""
        return self._inner.addresses()

    def stats(self) -> dict[str, Any]:
        """Return the core's stats: version, readiness, listeners and clusters."""
        return self._inner.stats()

    def metrics(self) -> str:
        """Return the metrics in the Prometheus text format."""
        return self._inner.metrics()

    def ready(self) -> bool:
        """Whether the proxy is started with a snapshot, not shutting down, and has an
        identity if the snapshot uses tls."""
        return self._inner.ready()

    def not_ready_reason(self) -> str | None:
        """Why the proxy is not ready, or None when it is."""
        return self._inner.not_ready_reason()

    def set_identity(self, chain_pem: str, key_pem: str, roots_pem: str) -> CertificateInfo:
        """Put an mTLS identity in force for new handshakes; IdentityError leaves the old one."""
        return cast(CertificateInfo, self._inner.set_identity(chain_pem, key_pem, roots_pem))

    def identity(self) -> CertificateInfo | None:
        """The identity in force, or None before the first ``set_identity``."""
        return cast(CertificateInfo | None, self._inner.identity())

    def shutdown(self, grace_s: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace_s``, then close."""
        self._inner.shutdown(self.grace_s if grace_s is None else grace_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a proxy config file, as the Rust config types derive it."""
    schema: dict[str, Any] = json.loads(_core.config_schema())
    return schema


def main(argv: list[str] | None = None) -> int:
    """``python -m meshpy.dataplane --schema`` prints the JSON Schema of a config file."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["--schema"]:
        print("usage: python -m meshpy.dataplane --schema", file=sys.stderr)
        return 2
    sys.stdout.write(_core.config_schema() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
