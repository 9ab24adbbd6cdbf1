"""Run one proxy in the foreground from a config file: start, reload on SIGHUP, drain on SIGTERM.

Light on purpose (no pydantic, no httpx): the Rust core validates the config. Lines on
stderr, whose format tests and tools rely on::

    meshpy proxy: admin 127.0.0.1:9901, web 127.0.0.1:8000   bound addresses (start, changes)
    meshpy proxy: identity spiffe://td/ns/default/sa/web serial 1f valid until 2026-05-01T12:00:00Z
                                                             an identity went live (start, changes)
    meshpy proxy: applied version 7                          a snapshot went live
    meshpy proxy: draining for up to 10s                     SIGTERM/SIGINT received
    meshpy proxy: stopped
    error: proxy.yaml: clusters[0].lb: unknown variant ...    a rejected file
    warning: proxy.yaml: ...                                  e.g. bootstrap changed on reload
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from meshpy import _core
from meshpy.addresses import format_addresses, parse_addresses
from meshpy.configfile import ConfigFileError, IdentityFiles, ProxyFile, load

__all__ = ["EXIT_BAD_CONFIG", "EXIT_FAILED", "format_addresses", "parse_addresses", "run"]

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
_STOP = frozenset({signal.SIGTERM, signal.SIGINT})
_HANDLED = frozenset({signal.SIGHUP, *_STOP})


def describe(error: _core.ConfigError) -> str:
    """Return ``path: message`` for a ConfigError, or just the message for whole-document ones."""
    path = getattr(error, "path", "")
    message = getattr(error, "message", None) or str(error)
    return f"{path}: {message}" if path else message


@dataclass
class _Runner:
    """The state of one running proxy and the lines it writes."""

    config_path: str
    addresses_json: bool
    err: TextIO
    out: TextIO
    proxy: _core.Proxy | None = None
    bootstrap: dict[str, object] = field(default_factory=dict)
    version: int = 0
    addresses: dict[str, str] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    """What the certificate in force says, once an identity was set."""

    def say(self, line: str) -> None:
        self.err.write(f"meshpy proxy: {line}\n")
        self.err.flush()

    def error(self, line: str, *, level: str = "error") -> None:
        self.err.write(f"{level}: {self.config_path}: {line}\n")
        self.err.flush()

    def announce(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        self.say(format_addresses(addresses))
        if self.addresses_json:
            self.out.write(json.dumps(addresses) + "\n")
            self.out.flush()

    def set_identity(self, files: IdentityFiles) -> None:
        """Read the identity files and put them in force; raise ConfigFileError or
        IdentityError (the previous identity then stays)."""
        assert self.proxy is not None
        pem = files.read()
        info = self.proxy.set_identity(pem.cert_chain, pem.key, pem.roots)
        changed = self.identity is None or any(
            info[key] != self.identity[key] for key in ("identity", "serial")
        )
        self.identity = info
        if changed:
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(info["not_after"]))
            self.say(f"identity {info['identity']} serial {info['serial']} valid until {until}")

    def start(self) -> int:
        try:
            loaded = load(self.config_path)
        except ConfigFileError as exc:
            self.error(str(exc))
            return EXIT_BAD_CONFIG
        try:
            self.proxy = _core.Proxy(loaded.bootstrap_json())
            if loaded.identity is not None:
                self.set_identity(loaded.identity)
            self.version = self.proxy.apply(loaded.snapshot_json())
        except _core.ConfigError as exc:
            self.error(describe(exc))
            return EXIT_BAD_CONFIG
        except (ConfigFileError, _core.IdentityError) as exc:
            self.error(str(exc))
            return EXIT_BAD_CONFIG
        self.bootstrap = loaded.bootstrap
        try:
            addresses = self.proxy.start()
        except _core.MeshpyError as exc:
            self.error(str(exc))
            return EXIT_FAILED
        self.say(f"applied version {self.version}")
        self.announce(addresses)
        return 0

    def reload(self) -> None:
        assert self.proxy is not None
        keeping = f"(still serving version {self.version})"
        try:
            loaded = load(self.config_path)
        except ConfigFileError as exc:
            self.error(f"{exc} {keeping}")
            return
        self._warn_bootstrap_change(loaded)
        self._reload_identity(loaded)
        try:
            self.version = self.proxy.apply(loaded.snapshot_json())
        except _core.ConfigError as exc:
            self.error(f"{describe(exc)} {keeping}")
            return
        except _core.MeshpyError as exc:
            self.error(f"{exc} {keeping}")
            return
        self.say(f"applied version {self.version}")
        addresses = self.proxy.addresses()
        if addresses != self.addresses:
            self.announce(addresses)

    def _reload_identity(self, loaded: ProxyFile) -> None:
        """Re-read the identity files; a bad identity is reported and the old one serves on."""
        serving = self.identity["identity"] if self.identity else None
        if loaded.identity is None:
            if serving is not None:
                self.error(
                    f"identity removed from the file: still serving {serving} until restart",
                    level="warning",
                )
            return
        try:
            self.set_identity(loaded.identity)
        except (ConfigFileError, _core.IdentityError) as exc:
            keeping = f"still serving identity {serving}" if serving else "no identity set"
            self.error(f"{exc} ({keeping})")

    def _warn_bootstrap_change(self, loaded: ProxyFile) -> None:
        changed = sorted(
            key
            for key in {*loaded.bootstrap, *self.bootstrap}
            if loaded.bootstrap.get(key) != self.bootstrap.get(key)
        )
        if changed:
            keys = " and ".join(changed)
            self.error(f"{keys} changed: restart the proxy to apply", level="warning")

    def discard(self) -> None:
        """Release a proxy that failed to start; errors here add nothing."""
        if self.proxy is not None:
            with contextlib.suppress(_core.MeshpyError):
                self.proxy.shutdown(0.0)

    def stop(self, drain_s: float) -> None:
        assert self.proxy is not None
        self.say(f"draining for up to {drain_s:g}s")
        self.proxy.shutdown(drain_s)
        self.say("stopped")


def run(
    config_path: str,
    *,
    drain_s: float = 10.0,
    addresses_json: bool = False,
    err: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the proxy until SIGTERM or SIGINT; return the process exit code.

    The signals are blocked before the core starts its threads, so every thread inherits
    the mask and the main thread takes them one at a time with ``sigwait``.
    """
    runner = _Runner(config_path, addresses_json, err or sys.stderr, out or sys.stdout)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
    try:
        code = runner.start()
        if code != 0:
            runner.discard()
            return code
        while signal.sigwait(_HANDLED) == signal.SIGHUP:
            runner.reload()
        runner.stop(drain_s)
        return 0
    finally:
        # Signals that arrived while draining would otherwise fire once unblocked.
        while pending := signal.sigpending() & _HANDLED:
            signal.sigwait(pending)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
