"""What a sidecar keeps on disk to start serving again while the control plane is away.

The last snapshot it applied, its certificate, key and trust bundle, and its instance id
and ports (the snapshot names them). Written atomically (temporary file, then rename);
the directory is 0700 and every file 0600, as it holds the private key.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SavedIdentity", "SavedPorts", "StateDir"]


@dataclass(frozen=True)
class SavedIdentity:
    """A certificate chain, its key and the trust bundle, as PEM."""

    chain: str
    key: str
    roots: str


@dataclass(frozen=True)
class SavedPorts:
    """The instance this sidecar registered, and the ports its snapshot uses."""

    instance: str | None
    inbound_port: int
    outbound_port: int
    app_port: int | None


@dataclass(frozen=True)
class StateDir:
    """The state directory of one sidecar."""

    path: Path

    def save_snapshot(self, body: str) -> None:
        """Keep the snapshot the proxy applied last."""
        self._write("snapshot.json", body)

    def snapshot(self) -> str | None:
        """The saved snapshot, if any."""
        return self._read("snapshot.json")

    def save_identity(self, identity: SavedIdentity) -> None:
        """Keep the certificate in force, with its key."""
        self._write("identity.json", json.dumps(identity.__dict__))

    def identity(self) -> SavedIdentity | None:
        """The saved identity, if any (it may have expired)."""
        data = self._json("identity.json")
        try:
            return SavedIdentity(str(data["chain"]), str(data["key"]), str(data["roots"]))
        except (KeyError, TypeError):
            return None

    def save_ports(self, ports: SavedPorts) -> None:
        """Keep the instance id and ports."""
        self._write("instance.json", json.dumps(ports.__dict__))

    def ports(self) -> SavedPorts | None:
        """The saved instance id and ports, if any."""
        data = self._json("instance.json")
        try:
            app_port = data["app_port"]
            return SavedPorts(
                instance=str(data["instance"]) if data["instance"] else None,
                inbound_port=int(data["inbound_port"]),
                outbound_port=int(data["outbound_port"]),
                app_port=int(app_port) if app_port is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def _write(self, name: str, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.path / name)

    def _read(self, name: str) -> str | None:
        with contextlib.suppress(OSError):
            return (self.path / name).read_text(encoding="utf-8")
        return None

    def _json(self, name: str) -> Any:
        text = self._read(name)
        if text is None:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return {}
