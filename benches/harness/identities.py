"""The SPIFFE identities of the mTLS benchmarks, and the files that hold their certificates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TRUST_DOMAIN = "meshpy.local"
SERVER_ID = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/payment"
CLIENT_ID = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/frontend"


@dataclass(frozen=True)
class Identity:
    spiffe_id: str
    chain: Path  # PEM: leaf, then intermediate
    key: Path  # PEM, PKCS#8


@dataclass(frozen=True)
class Pki:
    root: Path
    server: Identity  # sidecar B, the inbound side: .../sa/payment
    client: Identity  # sidecar A and the handshake client: .../sa/frontend
