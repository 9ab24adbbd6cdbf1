"""The Rust data plane (crates/proxy-py): the Proxy class, identity helpers and exceptions.

Exception tree::

    MeshpyError
    ├── ConfigError    a bootstrap or snapshot was rejected; ``path`` names the field
    ├── BindError      a listener address could not be bound
    ├── IdentityError  set_identity refused a chain, key or roots (the old identity stays)
    └── StateError     a call out of order (start twice, apply after shutdown)

Certificate descriptions (``set_identity``, ``identity``, ``certificate_info``) are dicts::

    {"identity": "spiffe://td/ns/default/sa/web" | None, "not_before": 1.7e9, "not_after": 1.7e9,
     "serial": "1f03", "issuer": "CN=...", "subject": "", "is_ca": False}
"""

from typing import Any, Self, final

__all__ = [
    "BindError",
    "ConfigError",
    "IdentityError",
    "MeshpyError",
    "Proxy",
    "StateError",
    "__version__",
    "certificate_info",
    "check_bootstrap",
    "check_snapshot",
    "config_schema",
    "explain",
    "generate_csr",
    "regex_problem",
]

__version__: str

class MeshpyError(Exception):
    """Base class of every meshpy error, the data plane's and the rest (``meshpy.errors``)."""

class ConfigError(MeshpyError):
    """A config was rejected; ``str(e) == f"{e.path}: {e.message}"``."""

    path: str
    message: str

class BindError(MeshpyError):
    """A listener address could not be bound; the message names listener and address."""

class IdentityError(MeshpyError):
    """set_identity refused the chain, key or roots; the message says which and why."""

class StateError(MeshpyError):
    """A call that the proxy's state does not allow, such as start() twice."""

@final
class Proxy:
    """One proxy: an admin listener, data listeners and clusters, on Rust-owned threads."""

    def __new__(cls, bootstrap_json: str) -> Self: ...
    def start(self) -> dict[str, str]: ...
    def apply(self, snapshot_json: str) -> int: ...
    def addresses(self) -> dict[str, str]: ...
    def stats(self) -> dict[str, Any]: ...
    def metrics(self) -> str: ...
    def ready(self) -> bool: ...
    def not_ready_reason(self) -> str | None: ...
    def set_identity(self, chain_pem: str, key_pem: str, roots_pem: str) -> dict[str, Any]: ...
    def identity(self) -> dict[str, Any] | None: ...
    def shutdown(self, grace_s: float) -> None: ...

def generate_csr(spiffe_id: str) -> tuple[str, str]:
    """Return ``(key_pem, csr_pem)``: a new ECDSA P-256 key (PKCS#8) and a CSR for the ID.

    Raises ValueError for a malformed SPIFFE ID.
    """

def certificate_info(pem: str) -> dict[str, Any]:
    """Describe the first certificate of a PEM document; ValueError if there is none."""

def regex_problem(pattern: str) -> str | None:
    """Why the data plane refuses ``pattern`` as a RegularExpression match (Rust ``regex``
    syntax, matched against the whole value, bounded in length and compiled size), or None."""

def check_bootstrap(bootstrap_json: str) -> None:
    """Raise ConfigError unless ``Proxy(bootstrap_json)`` would take the document."""

def check_snapshot(snapshot_json: str) -> None:
    """Raise ConfigError unless ``Proxy.apply(snapshot_json)`` would take the document."""

def explain(
    snapshot_json: str,
    listener: str,
    *,
    host: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    identity: str | None,
) -> dict[str, Any]:
    """What the listener ``listener`` of a snapshot does with a request, and why, as the
    proxy's own planning decides it: ``path`` (as planned: normalised on a listener with
    authorization), ``authorization`` (``default``, ``audited`` policy names, ``decision``:
    ``allowed``, ``by`` (``policy``, ``no_allow_match`` or ``default``), ``policy``, ``rule``;
    None on a listener without one), ``route`` (``{"cluster"}`` on a listener with one, else
    ``virtual_host``, the matches ``tried`` in precedence order with the condition that
    ``failed``, and the one ``matched``: ``{"rule", "match"}`` indexes of the config),
    ``refused`` (``status``, ``reason``, ``detail`` the client gets; None when the request goes
    on), and for a request that goes on ``backends`` (each ``cluster``, ``weight``, ``path`` and
    ``host`` it is sent with, ``mirrors``), ``timeout_ms``, ``backend_timeout_ms``, ``retry``.

    Raises ConfigError for a snapshot the proxy would refuse, ValueError for a question that
    is no request (unknown or TCP listener, bad method, path or header).
    """

def config_schema() -> str:
    """The JSON Schema of a proxy config file, derived from the Rust config types (indented)."""
