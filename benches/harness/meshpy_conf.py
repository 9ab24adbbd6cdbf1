"""meshpy proxy configurations: the one-hop proxy, a sidecar's head and identity, its launch."""

from __future__ import annotations

from pathlib import Path

from harness.identities import Identity
from harness.processes import Launch


def meshpy_head(admin: int, identity: str = "") -> str:
    """The top of a config: admin address, one worker, and the identity's lines if any."""
    return f"admin: 127.0.0.1:{admin}\nworkers: 1\n{identity}"


def meshpy_identity(ident: Identity, root: Path) -> str:
    return f'identity: {{cert_chain: "{ident.chain}", key: "{ident.key}", roots: "{root}"}}\n'


def meshpy_config(tmp: Path, port: int, backend: int, admin: int) -> Path:
    """One hop: an `http` listener -> an `http1` cluster of the backend, round robin."""
    conf = tmp / "meshpy.yaml"
    conf.write_text(
        meshpy_head(admin)
        + f"""listeners:
  - {{name: web, address: 127.0.0.1:{port}, protocol: http, cluster: backend}}
clusters:
  - {{name: backend, endpoints: ["127.0.0.1:{backend}"], lb: round_robin, protocol: http1}}
"""
    )
    return conf


def meshpy_launch(meshpy: str, conf: Path, admin: int) -> Launch:
    """`meshpy proxy run` with `conf`, ready once its admin /ready answers 200."""
    return Launch(
        [meshpy, "proxy", "run", "--config", str(conf)], [f"http://127.0.0.1:{admin}/ready"]
    )
