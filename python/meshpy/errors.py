"""meshpy's exceptions and their one base, ``MeshpyError``: catch it to catch any meshpy failure.

The base is the data plane's (``meshpy._core``), so the core's errors are in the same tree::

    MeshpyError
    ├── ConfigError, BindError, IdentityError, StateError   the proxy core (meshpy._core)
    ├── ConfigFileError         a proxy config file can't be read (meshpy.configfile)
    ├── ResourceError           a resource (HTTPRoute, ...) is invalid (meshpy.resources)
    ├── ControlPlaneError       the control plane refused or can't be reached (meshpy.sidecar)
    ├── ApiError                the REST API answered an error (meshpy.rules)
    ├── MeshFileError, StartError                         ``meshpy up`` (meshpy.up)
    ├── RolloutError            a rollout can't go on (meshpy.rollout)
    ├── UnknownInstanceError    no such instance in the registry (meshpy.snapshot)
    ├── CAError, CSRRefusedError, CertificateError, StorageError, RotationError
    │                           the certificate authority (meshpy.ca)
    └── ...                     and the server's own (registry, api)

Each class is defined in its module, next to what raises it, and is re-exported by the
package its callers import; this module is light, so that any of them can import it.
"""

from __future__ import annotations

from meshpy._core import BindError, ConfigError, IdentityError, MeshpyError, StateError

__all__ = ["BindError", "ConfigError", "IdentityError", "MeshpyError", "StateError"]
