"""`meshpy proxy run --service` sidecar processes and a control plane for them, in tests."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from meshpy.proxyrun import parse_addresses
from tests.integration.proxyproc import ProxyProcess, meshpy_cmd
from tests.integration.serverproc import ServerProcess

READY_TIMEOUT_S = 30.0
_IDENTITY = re.compile(r"meshpy sidecar: identity (\S+), certificate ([0-9a-f]+) ")


def join_token(server: ServerProcess, service: str, namespace: str = "default") -> str:
    """A join token for ``namespace``/``service``."""
    answer = server.client().post(
        "/api/v1/tokens", json={"service": service, "namespace": namespace}
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


def spawn_sidecar(
    tmp: Path, server: ServerProcess, service: str, *args: str, name: str | None = None
) -> ProxyProcess:
    """Start the sidecar of ``service`` (with its own join token), without waiting for it."""
    name = name or service
    log_path, out_path = tmp / f"{name}.sidecar.stderr", tmp / f"{name}.sidecar.stdout"
    command = [
        *meshpy_cmd("proxy", "run", "--service", service, "--server", server.url, *args),
        "--token",
        join_token(server, service),
    ]
    with log_path.open("wb") as err, out_path.open("wb") as out:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=tmp)
    return ProxyProcess(tmp / f"{name}.no-config", log_path, out_path, proc)


def wait_sidecar_ready(sidecar: ProxyProcess, timeout: float = READY_TIMEOUT_S) -> ProxyProcess:
    """Wait for "meshpy sidecar: ready" and record the last announced addresses."""
    sidecar.wait_for_log(r"^meshpy sidecar: ready$", timeout=timeout)
    for line in sidecar.log().splitlines():
        addresses = parse_addresses(line)
        if addresses is not None:
            sidecar.addresses = addresses
    return sidecar


def serials(sidecar: ProxyProcess) -> list[str]:
    """The serials of the certificates the sidecar installed, in order."""
    return [m.group(2) for m in _IDENTITY.finditer(sidecar.log())]


def wait_for_new_serial(sidecar: ProxyProcess, after: int, timeout: float) -> list[str]:
    """Wait until the sidecar installed more than ``after`` certificates."""
    deadline = time.monotonic() + timeout
    while len(found := serials(sidecar)) <= after:
        if time.monotonic() > deadline:
            msg = f"no new certificate in {timeout}s; sidecar stderr:\n{sidecar.log()}"
            raise AssertionError(msg)
        time.sleep(0.1)
    return found
