"""Two-sidecar pairs: sidecar A (outbound, where the load goes) and B (inbound), started in turn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.common import Json, log
from harness.identities import Pki
from harness.measure import Bench, Target
from harness.processes import Launch, Popen
from harness.procfs import process_tree
from harness.ready import Probe, probe_http, wait_until
from harness.tlsprobe import check_client_cert_required, probe_mtls


@dataclass
class Pair(Target):
    """Sidecar A (`proc`, where wrk and fortio send) and sidecar B (`inbound`)."""

    inbound: Popen | None = None
    inbound_port: int = 0
    handshakes: list[Json] = field(default_factory=list)

    def procs(self) -> list[Popen]:
        """Both sidecars: the pair's CPU and memory."""
        return [p for p in (self.proc, self.inbound) if p is not None]

    def proc_name(self, proc: Popen) -> str:
        return f"{self.name}-inbound" if proc is self.inbound else f"{self.name}-outbound"

    def inbound_tree(self) -> list[int]:
        return process_tree(self.inbound.pid) if self.inbound else []


def start_sidecar(b: Bench, name: str, launch: Launch, probes: list[Probe]) -> Popen:
    """Start a sidecar on the proxy core; wait for its ready URLs, then for the probes."""
    log(f"{name}: {' '.join(launch.argv)}")
    proc = b.procs.start(name, launch.argv, b.settings.proxy_cpu)
    try:
        for probe in [*map(probe_http, launch.ready_urls), *probes]:
            wait_until(b.procs, name, proc, probe)
    except RuntimeError:
        b.procs.stop(proc)
        raise
    return proc


def start_sidecars(
    b: Bench,
    pair: Pair,
    pki: Pki,
    *,
    inbound: Launch,
    ports: Sequence[int],
    outbound: Callable[[], Launch],
    probe: Probe,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Start B (`inbound`) until each of its `ports` serves mTLS, check that each requires a
    client certificate, start A (`outbound()`) until `probe` passes, run `check`, then read
    the pair's idle memory. A failure stops what was started."""
    name = pair.name
    probes = [probe_mtls(port, pki) for port in ports]
    pair.inbound = start_sidecar(b, f"{name}-inbound", inbound, probes)
    try:
        for port in ports:
            check_client_cert_required(f"{name}-inbound", port, pki)
        pair.proc = start_sidecar(b, f"{name}-outbound", outbound(), [probe])
        check()
    except RuntimeError:
        for proc in pair.procs():
            b.procs.stop(proc)
        raise
    pair.read_idle_memory()
