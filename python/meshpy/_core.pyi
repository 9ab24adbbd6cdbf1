"""The Rust data plane (crates/proxy-py): one Proxy class and its exceptions.

Exception tree::

    MeshpyError
    ├── ConfigError   a bootstrap or snapshot was rejected; ``path`` names the field
    ├── BindError     a listener address could not be bound
    └── StateError    a call out of order (start twice, apply after shutdown)
"""

from typing import Any, Self, final

__all__ = ["BindError", "ConfigError", "MeshpyError", "Proxy", "StateError", "__version__"]

__version__: str

class MeshpyError(Exception):
    """Base class of every error raised by the data plane."""

class ConfigError(MeshpyError):
    """A config was rejected; ``str(e) == f"{e.path}: {e.message}"``."""

    path: str
    message: str

class BindError(MeshpyError):
    """A listener address could not be bound; the message names listener and address."""

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
    def shutdown(self, grace_s: float) -> None: ...
