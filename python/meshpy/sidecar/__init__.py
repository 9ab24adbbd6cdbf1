"""The sidecar: the proxy core plus what keeps it in the mesh (identity, registration, config).

Light on purpose: a sidecar runs next to every app, so this package uses the standard
library and ``meshpy._core`` only (no pydantic, httpx, cryptography or the server stack).
"""
