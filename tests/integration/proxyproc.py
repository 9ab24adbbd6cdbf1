"""A `meshpy proxy run` child process for tests: config file, log file, addresses, signals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshpy.proxyrun import parse_addresses

READY_TIMEOUT_S = 15.0


@dataclass
class ProxyProcess:
    """One proxy process this test started; ``stop()`` or the fixture ends it by its PID."""

    config_path: Path
    log_path: Path
    out_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    addresses: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def log(self) -> str:
        """Everything the proxy wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def url(self, path: str = "/", listener: str = "web") -> str:
        """``http://ip:port/path`` of a listener."""
        return f"http://{self.addresses[listener]}{path}"

    def host_port(self, listener: str = "web") -> tuple[str, int]:
        """(host, port) of a listener."""
        host, _, port = self.addresses[listener].rpartition(":")
        return host, int(port)

    def wait_for_log(self, pattern: str, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Wait until ``pattern`` (a regex) matches ``count`` stderr lines; return them."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log().splitlines() if regex.search(line)]
            if len(lines) >= count:
                return lines
            if time.monotonic() > deadline or self.proc.poll() is not None:
                msg = f"no {count} lines matching {pattern!r}; proxy stderr:\n{self.log()}"
                raise AssertionError(msg)
            time.sleep(0.02)

    def write_config(self, config: dict[str, Any] | str) -> None:
        """Replace the config file atomically (as an editor or config manager would)."""
        write_config(self.config_path, config)

    def reload(self, config: dict[str, Any] | str | None = None) -> None:
        """Optionally rewrite the config, then send SIGHUP."""
        if config is not None:
            self.write_config(config)
        self.proc.send_signal(signal.SIGHUP)

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` to this process."""
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; return its exit code."""
        return self.proc.wait(timeout)

    def terminate(self) -> None:
        """SIGTERM, if it still runs; ``stop()`` then waits for it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit; only this PID is signalled."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def proxy_config(
    endpoints: list[str],
    *,
    protocol: str = "http",
    admin: bool = True,
    listener: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A one-listener ("web"), one-cluster ("backend") config on 127.0.0.1 port 0."""
    config: dict[str, Any] = {"admin": "127.0.0.1:0"} if admin else {}
    config.update(top)
    config["listeners"] = [
        {
            "name": "web",
            "address": "127.0.0.1:0",
            "protocol": protocol,
            "cluster": "backend",
            **(listener or {}),
        }
    ]
    config["clusters"] = [{"name": "backend", "endpoints": endpoints, **(cluster or {})}]
    return config


def write_config(path: Path, config: dict[str, Any] | str) -> None:
    """Write ``config`` (a dict or raw text) to ``path`` atomically, as YAML or JSON by suffix."""
    if isinstance(config, str):
        text = config
    elif path.suffix == ".json":
        text = json.dumps(config, indent=2)
    else:
        text = yaml.safe_dump(config, sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def meshpy_cmd(*args: str) -> list[str]:
    """The command line that runs meshpy with this interpreter."""
    return [sys.executable, "-m", "meshpy", *args]


def spawn(
    tmp: Path, config: dict[str, Any] | str, *, name: str = "proxy.yaml", args: tuple[str, ...] = ()
) -> ProxyProcess:
    """Write the config and start `meshpy proxy run` in ``tmp``, without waiting for it."""
    config_path = tmp / name
    write_config(config_path, config)
    log_path, out_path = tmp / f"{name}.stderr", tmp / f"{name}.stdout"
    with log_path.open("wb") as err, out_path.open("wb") as out:
        proc = subprocess.Popen(
            meshpy_cmd("proxy", "run", "--config", name, *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=tmp,
        )
    return ProxyProcess(config_path, log_path, out_path, proc)


def wait_ready(proxy: ProxyProcess, timeout: float = READY_TIMEOUT_S) -> ProxyProcess:
    """Wait for the bound-addresses line on stderr and record the addresses."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proxy.log().splitlines():
            addresses = parse_addresses(line)
            if addresses is not None:
                proxy.addresses = addresses
                return proxy
        if proxy.proc.poll() is not None:
            break
        time.sleep(0.02)
    with contextlib.suppress(Exception):
        proxy.stop()
    msg = f"proxy not ready (exit code {proxy.proc.poll()}); stderr:\n{proxy.log()}"
    raise AssertionError(msg)
