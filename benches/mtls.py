#!/usr/bin/env python3
"""Compare mTLS sidecars: meshpy and Envoy, full handshakes and a two-sidecar path.

Both use the same certificates, made for the run: ECDSA P-256, root ->
intermediate -> leaf, each leaf with one SPIFFE ID as its URI SAN
(``spiffe://meshpy.local/ns/default/sa/payment`` for the server side,
``.../sa/frontend`` for the client side). For each proxy, from one run:

1. full mTLS handshakes: the inbound sidecar (TLS 1.3, client certificate
   required) terminates every connection of ``benches/tlsload`` (a Go
   client: new connection, full handshake with a client certificate, one
   ``GET /`` with ``Connection: close``, close) and forwards the request to
   the backend. Reported: handshakes per CPU-second of the server process
   (from /proc), handshakes/s, the server's core share, and which side
   saturated;
2. the two-sidecar path: wrk (plaintext HTTP/1.1, keep-alive) -> sidecar A
   (outbound) -> mTLS, HTTP/2 -> sidecar B (inbound) -> backend. Reported:
   max requests/s (median of ``--rounds`` wrk rounds), the pair's CPU, and
   p50/p99 at a fixed rate (fortio) with what the pair adds to a direct run.

Both sidecars of a pair run on ``--proxy-cpu``; the backend, the load
generators and this script on ``--load-cpu``. The helpers (processes,
/proc accounting, wrk, fortio, reports) come from ``benches/run.py``.

Needs the ``cryptography`` package (run it with the project's .venv python,
as ``make bench-mtls`` does) and Go (to build benches/tlsload).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("benches/mtls.py needs `cryptography`: run it with .venv/bin/python (make bench-mtls)")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.backend import BODY
from harness.cli import load_parser, parse_load_args
from harness.common import Json, log, run_quiet
from harness.envoy_conf import envoy_cluster, envoy_listener
from harness.measure import (
    Bench,
    Settings,
    Target,
    measure_latency,
    measure_round,
    start_backend,
    summarize,
)
from harness.net import free_port, http_get
from harness.noise import ForeignCpu, wait_for_quiet
from harness.paths import REPO, TOOLS_DIR
from harness.processes import Launch, Processes, failure
from harness.procfs import CLK_TCK, cpu_ticks, memory_kb, process_tree
from harness.report import NOT_SATURATED, fmt, goal_section, notes, notes_section, sustained, table
from harness.results import save_json, write_readme
from harness.tools import install_tools
from harness.versions import machine_info, meshpy_version, version_of

BENCH_DIR = Path(__file__).resolve().parent
TLSLOAD_SRC = BENCH_DIR / "tlsload"
TLSLOAD_EXE = TOOLS_DIR / "tlsload"
MARK_START = "<!-- mtls:start -->"
MARK_END = "<!-- mtls:end -->"
ALL_TARGETS = ("meshpy", "envoy", "direct")
SIDECARS = ("meshpy", "envoy")
TRUST_DOMAIN = "meshpy.local"
SERVER_ID = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/payment"
CLIENT_ID = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/frontend"
GOAL_P99_ADDED = 0.7  # meshpy pair's added p99 <= this x Envoy pair's
GOAL_P50_PER_HOP_US = 100.0

Popen = subprocess.Popen[bytes]
Probe = Callable[[], str | None]  # None when ready, else what it saw

# ---------------------------------------------------------------------------
# Certificates: root -> intermediate -> SPIFFE leaves, ECDSA P-256
# ---------------------------------------------------------------------------


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


def cert_name(label: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshpy bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, label),
        ]
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    label: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    path_len: int | None = None,
    spiffe_id: str | None = None,
) -> x509.Certificate:
    """A CA certificate (spiffe_id None) or a SPIFFE leaf; self-signed if no issuer."""
    issuer_name, signer = issuer or (cert_name(label), key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert_name(label))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    )
    if spiffe_id is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=path_len), critical=True
        ).add_extension(key_usage(ca=True), critical=True)
    else:
        eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        san = [x509.UniformResourceIdentifier(spiffe_id)]
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
        )
    return builder.sign(signer, hashes.SHA256())


def key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_leaf(
    outdir: Path,
    label: str,
    spiffe_id: str,
    intermediate: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
) -> Identity:
    inter_cert, inter_key = intermediate
    key = new_key()
    leaf = issue(label, key, (inter_cert.subject, inter_key), spiffe_id=spiffe_id)
    chain, key_file = outdir / f"{label}.chain.pem", outdir / f"{label}.key.pem"
    chain.write_bytes(pem(leaf) + pem(inter_cert))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_file.write_bytes(key_bytes)
    key_file.chmod(0o600)
    return Identity(spiffe_id, chain, key_file)


def make_pki(outdir: Path) -> Pki:
    """Write root.pem and a chain and key per identity into outdir."""
    outdir.mkdir(parents=True, exist_ok=True)
    root_key, inter_key = new_key(), new_key()
    root = issue("meshpy bench root", root_key, None, path_len=1)
    inter = issue("meshpy bench intermediate", inter_key, (root.subject, root_key), path_len=0)
    (outdir / "root.pem").write_bytes(pem(root))
    return Pki(
        root=outdir / "root.pem",
        server=write_leaf(outdir, "payment", SERVER_ID, (inter, inter_key)),
        client=write_leaf(outdir, "frontend", CLIENT_ID, (inter, inter_key)),
    )


# ---------------------------------------------------------------------------
# Sidecar configurations: B (inbound, terminates mTLS), A (outbound, originates it)
# ---------------------------------------------------------------------------

TLS_SOCKETS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def envoy_tls_common(ident: Identity, root: Path, alpn: list[str], indent: int) -> str:
    """common_tls_context: TLS 1.3 only, our certificate, the root as trust anchor."""
    text = f"""common_tls_context:
  tls_params: {{tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}}
  alpn_protocols: {json.dumps(alpn)}
  tls_certificates:
  - certificate_chain: {{filename: "{ident.chain}"}}
    private_key: {{filename: "{ident.key}"}}
  validation_context:
    trusted_ca: {{filename: "{root}"}}
"""
    return "".join(" " * indent + line + "\n" for line in text.splitlines())


def envoy_inbound(tmp: Path, pki: Pki, port: int, backend: int) -> Path:
    """Envoy B: mTLS listener (client certificate required) -> plaintext backend."""
    tls = f"""      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_SOCKETS}.DownstreamTlsContext
          require_client_certificate: true
{envoy_tls_common(pki.server, pki.root, ["h2", "http/1.1"], 10)}"""
    conf = tmp / "envoy-inbound.yaml"
    conf.write_text(
        "static_resources:\n  listeners:\n"
        + envoy_listener("inbound", port, "backend", "AUTO", tls)
        + "  clusters:\n"
        + envoy_cluster("backend", backend)
    )
    return conf


def envoy_upstream_mtls(ident: Identity, root: Path) -> str:
    """A cluster's HTTP/2 over mTLS, presenting ``ident``, checking the server is payment."""
    common = envoy_tls_common(ident, root, ["h2"], 8)
    common += f"""            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {{exact: "{SERVER_ID}"}}
"""
    return f"""    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": {HTTP_OPTIONS}
        explicit_http_config: {{http2_protocol_options: {{}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": {TLS_SOCKETS}.UpstreamTlsContext
{common}"""


def envoy_outbound(tmp: Path, pki: Pki, port: int, upstream: int) -> Path:
    """Envoy A: plaintext HTTP/1.1 listener -> cluster over mTLS and HTTP/2, B's ID checked."""
    extra = envoy_upstream_mtls(pki.client, pki.root)
    conf = tmp / "envoy-outbound.yaml"
    conf.write_text(
        "static_resources:\n  listeners:\n"
        + envoy_listener("outbound", port, "payment", "HTTP1", "")
        + "  clusters:\n"
        + envoy_cluster("payment", upstream, extra)
    )
    return conf


def meshpy_identity(ident: Identity, root: Path) -> str:
    return f'identity: {{cert_chain: "{ident.chain}", key: "{ident.key}", roots: "{root}"}}\n'


def meshpy_inbound(tmp: Path, pki: Pki, port: int, backend: int, admin: int) -> Path:
    """meshpy B: listener with tls strict (mTLS, client certificate required) -> backend."""
    conf = tmp / "meshpy-inbound.yaml"
    conf.write_text(
        f"admin: 127.0.0.1:{admin}\nworkers: 1\n"
        + meshpy_identity(pki.server, pki.root)
        + f"""listeners:
  - {{name: inbound, address: 127.0.0.1:{port}, protocol: http, cluster: backend,
     tls: {{mode: strict}}}}
clusters:
  - {{name: backend, endpoints: ["127.0.0.1:{backend}"], lb: round_robin, protocol: http1}}
"""
    )
    return conf


def meshpy_outbound(tmp: Path, pki: Pki, port: int, upstream: int, admin: int) -> Path:
    """meshpy A: plaintext listener -> cluster over mTLS (HTTP/2 by ALPN), B's ID checked."""
    conf = tmp / "meshpy-outbound.yaml"
    conf.write_text(
        f"admin: 127.0.0.1:{admin}\nworkers: 1\n"
        + meshpy_identity(pki.client, pki.root)
        + f"""listeners:
  - {{name: outbound, address: 127.0.0.1:{port}, protocol: http, cluster: payment}}
clusters:
  - {{name: payment, endpoints: ["127.0.0.1:{upstream}"], lb: round_robin,
     tls: {{identity: "{SERVER_ID}"}}}}
"""
    )
    return conf


# (tmp, pki, own port, upstream port) -> how to start it
Launcher = Callable[[Path, Pki, int, int], Launch]


@dataclass
class Sidecar:
    name: str
    inbound: Launcher
    outbound: Launcher
    version: Callable[[], str]


def make_sidecars(tools: dict[str, str]) -> dict[str, Sidecar]:
    envoy_flags = ["--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"]

    def meshpy(make: Callable[[Path, Pki, int, int, int], Path]) -> Launcher:
        def launch(tmp: Path, pki: Pki, port: int, upstream: int) -> Launch:
            admin = free_port()
            conf = make(tmp, pki, port, upstream, admin)
            argv = [tools["meshpy"], "proxy", "run", "--config", str(conf)]
            return Launch(argv, [f"http://127.0.0.1:{admin}/ready"])

        return launch

    def envoy(make: Callable[[Path, Pki, int, int], Path]) -> Launcher:
        def launch(tmp: Path, pki: Pki, port: int, upstream: int) -> Launch:
            return Launch([tools["envoy"], "-c", str(make(tmp, pki, port, upstream)), *envoy_flags])

        return launch

    sidecars = {}
    if "meshpy" in tools:
        sidecars["meshpy"] = Sidecar(
            "meshpy",
            meshpy(meshpy_inbound),
            meshpy(meshpy_outbound),
            lambda: meshpy_version(tools["meshpy"]),
        )
    if "envoy" in tools:
        pattern = r"version: \w+/(\d+\.\d+\.\d+)/"
        sidecars["envoy"] = Sidecar(
            "envoy",
            envoy(envoy_inbound),
            envoy(envoy_outbound),
            lambda: version_of([tools["envoy"], "--version"], pattern),
        )
    return sidecars


# ---------------------------------------------------------------------------
# Tools: the Go handshake client
# ---------------------------------------------------------------------------


def find_go() -> str | None:
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def ensure_tlsload() -> str:
    """Build benches/tlsload into benches/.tools unless the binary is up to date."""
    sources = [TLSLOAD_SRC / "main.go", TLSLOAD_SRC / "go.mod"]
    newest = max(src.stat().st_mtime for src in sources)
    if TLSLOAD_EXE.exists() and TLSLOAD_EXE.stat().st_mtime >= newest:
        return str(TLSLOAD_EXE)
    go = find_go()
    if not go:
        sys.exit("Go is needed to build benches/tlsload (https://go.dev/dl/)")
    log("building benches/tlsload")
    TOOLS_DIR.mkdir(exist_ok=True)
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0")
    argv = [go, "build", "-trimpath", "-o", str(TLSLOAD_EXE), "."]
    subprocess.run(argv, cwd=TLSLOAD_SRC, env=env, check=True)
    return str(TLSLOAD_EXE)


def go_version() -> str:
    go = find_go()
    return version_of([go, "version"], r"go version go(\S+)") if go else "?"


def elf_section_names(path: Path) -> list[str]:
    """Section names of a 64-bit little-endian ELF file; [] for anything else."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:6] != b"\x7fELF\x02\x01":
            return []
        (shoff,) = struct.unpack_from("<Q", head, 0x28)
        entsize, count, names_index = struct.unpack_from("<HHH", head, 0x3A)
        f.seek(shoff)
        table = f.read(entsize * count)
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        headers = [struct.unpack_from("<IIQQQQ", table, i * entsize) for i in range(count)]
        f.seek(headers[names_index][4])
        names = f.read(headers[names_index][5])
    return [names[h[0] : names.index(b"\0", h[0])].decode() for h in headers]


def meshpy_build(exe: str) -> str:
    """ "release", or "debug info" if the extension `exe` loads carries DWARF (a debug build?)."""
    first = Path(exe).read_bytes()[:512].split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        return "?"
    python = first[2:].decode().split()[0]
    res = run_quiet([python, "-c", "import meshpy._core as c; print(c.__file__)"])
    if res.returncode != 0:
        return "?"
    sections = elf_section_names(Path(res.stdout.strip()))
    return "debug info" if ".debug_info" in sections else "release"


# ---------------------------------------------------------------------------
# Probes: is a sidecar serving, and serving mTLS as it should?
# ---------------------------------------------------------------------------


def client_context(pki: Pki, *, with_cert: bool = True) -> ssl.SSLContext:
    """TLS 1.3 client context that trusts the root; host names are not checked (SPIFFE)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(pki.root)
    if with_cert:
        ctx.load_cert_chain(pki.client.chain, pki.client.key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def peer_uri(sock: ssl.SSLSocket) -> str:
    """The URI SAN of the peer's verified certificate, "" if none."""
    sans = (sock.getpeercert() or {}).get("subjectAltName", ())
    uris = [pair[1] for pair in sans if isinstance(pair, tuple) and pair[0] == "URI"]
    return str(uris[0]) if uris else ""


def tls_get(port: int, ctx: ssl.SSLContext) -> tuple[int | None, str, str]:
    """(status, body, server's URI SAN) of one GET over TLS; status None on failure."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2.0, context=ctx)
    try:
        conn.connect()
        uri = peer_uri(conn.sock) if isinstance(conn.sock, ssl.SSLSocket) else ""
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace"), uri
    except (OSError, http.client.HTTPException) as err:
        return None, str(err), ""
    finally:
        conn.close()


def probe_http(url: str) -> Probe:
    """A probe: None once url answers 200 (with the backend's body unless /ready)."""

    def probe() -> str | None:
        status, body = http_get(url)
        if status == 200 and (url.endswith("/ready") or body == BODY):
            return None
        return f"{url} gave {status} {body[:60]!r}"

    return probe


def probe_mtls(port: int, pki: Pki) -> Probe:
    """A probe: None once the mTLS listener serves the backend as SERVER_ID."""
    ctx = client_context(pki)

    def probe() -> str | None:
        status, body, uri = tls_get(port, ctx)
        if status == 200 and body == BODY and uri == SERVER_ID:
            return None
        return f"mTLS GET :{port} gave {status} {body[:60]!r}, server ID {uri!r}"

    return probe


def wait_until(procs: Processes, name: str, proc: Popen, probe: Probe) -> None:
    """Poll the probe until it passes; fail if the process exits or after 30 s."""
    deadline = time.monotonic() + 30.0
    while (why := probe()) is not None:
        if proc.poll() is not None:
            raise failure(f"{name} exited with {proc.returncode}", procs.log_tail(name))
        if time.monotonic() > deadline:
            raise failure(f"{name} not ready ({why})", procs.log_tail(name))
        time.sleep(0.1)


def check_client_cert_required(name: str, port: int, pki: Pki) -> None:
    """A request without a client certificate must not get through."""
    status, _, _ = tls_get(port, client_context(pki, with_cert=False))
    if status is not None:
        raise RuntimeError(f"{name}: answered {status} to a client without a certificate")


# ---------------------------------------------------------------------------
# The pairs under test
# ---------------------------------------------------------------------------


@dataclass
class HandshakeSettings:
    seconds: float
    connections: int
    curves: str


@dataclass
class MtlsBench:
    bench: Bench  # tools, wrk/fortio settings, processes, backend port
    pki: Pki
    handshake: HandshakeSettings


@dataclass
class Pair(Target):
    """Sidecar A (`proc`, where wrk and fortio send) and sidecar B (`inbound`)."""

    inbound: Popen | None = None
    inbound_port: int = 0
    handshakes: list[Json] = field(default_factory=list)

    def procs(self) -> list[Popen]:
        return [p for p in (self.proc, self.inbound) if p is not None]

    def tree(self) -> list[int]:
        """Both sidecars' processes: the pair's CPU and memory."""
        return [pid for p in self.procs() for pid in process_tree(p.pid)]

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


def start_pair(m: MtlsBench, sidecar: Sidecar) -> Pair:
    """Start B, check it requires mTLS, then A; read the pair's idle memory."""
    b, name = m.bench, sidecar.name
    in_port, out_port = free_port(), free_port()
    pair = Pair(name, f"http://127.0.0.1:{out_port}/", inbound_port=in_port)
    inbound = sidecar.inbound(b.tmp, m.pki, in_port, b.backend_port)
    pair.inbound = start_sidecar(b, f"{name}-inbound", inbound, [probe_mtls(in_port, m.pki)])
    try:
        check_client_cert_required(f"{name}-inbound", in_port, m.pki)
        outbound = sidecar.outbound(b.tmp, m.pki, out_port, in_port)
        pair.proc = start_sidecar(b, f"{name}-outbound", outbound, [probe_http(pair.url)])
    except RuntimeError:
        b.procs.stop(pair.inbound)
        raise
    time.sleep(1.0)
    pair.result["rss_idle_kb"], pair.result["pss_idle_kb"] = memory_kb(pair.tree())
    return pair


def check_pair_alive(b: Bench, t: Target) -> None:
    if not isinstance(t, Pair):
        return
    for proc in t.procs():
        if proc.poll() is not None:
            which = f"{t.name}-inbound" if proc is t.inbound else f"{t.name}-outbound"
            raise failure(f"{which} exited with {proc.returncode}", b.procs.log_tail(which))


# ---------------------------------------------------------------------------
# Handshakes
# ---------------------------------------------------------------------------


def core_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) clock ticks from /proc/stat (busy = not idle or iowait)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        match = re.match(r"cpu(\d+)\s+(.*)", line)
        if match:
            vals = [int(v) for v in match.group(2).split()[:8]]
            out[int(match.group(1))] = (sum(vals) - vals[3] - vals[4], sum(vals))
    return out


def core_busy(before: dict[int, tuple[int, int]], cpu: int) -> float:
    busy0, total0 = before[cpu]
    busy1, total1 = core_ticks()[cpu]
    return (busy1 - busy0) / max(1, total1 - total0)


def run_tlsload(m: MtlsBench, port: int, seconds: float) -> Json:
    """One run of the Go client against an mTLS listener; its JSON report."""
    h, pki = m.handshake, m.pki
    argv = ["taskset", "-c", str(m.bench.settings.load_cpu), m.bench.tools["tlsload"]]
    argv += ["-addr", f"127.0.0.1:{port}", "-ca", str(pki.root)]
    argv += ["-cert", str(pki.client.chain), "-key", str(pki.client.key), "-spiffe", SERVER_ID]
    argv += ["-c", str(h.connections), "-d", f"{seconds:g}s", "-curves", h.curves]
    res = run_quiet(argv, timeout=seconds + 60)
    try:
        out: Json = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"tlsload failed ({res.returncode}):\n{res.stderr}") from None
    if out["ok"] == 0:
        raise RuntimeError(f"tlsload: no handshake succeeded: {out.get('first_error')}")
    return out


def measure_handshakes(m: MtlsBench, p: Pair) -> None:
    """One round of full mTLS handshakes against B: per server CPU-second and per second."""
    s = m.bench.settings
    wait_for_quiet(s.max_wait_idle)
    if not p.handshakes:
        run_tlsload(m, p.inbound_port, s.warmup_seconds)
    audit, cores0 = ForeignCpu(), core_ticks()
    ticks0 = cpu_ticks(p.inbound_tree())
    r = run_tlsload(m, p.inbound_port, m.handshake.seconds)
    cpu_s = (cpu_ticks(p.inbound_tree()) - ticks0) / CLK_TCK
    r["server_cpu_s"] = cpu_s
    r["per_cpu_s"] = r["ok"] / cpu_s if cpu_s else None
    r["server_core_util"] = cpu_s / r["seconds"]
    r["proxy_core_busy"] = core_busy(cores0, s.proxy_cpu)
    r["load_core_busy"] = core_busy(cores0, s.load_cpu)
    p.handshakes.append(r)
    p.foreign.append(audit.cores())
    check_pair_alive(m.bench, p)
    per = fmt(r["per_cpu_s"])
    log(f"{p.name}: handshakes round {len(p.handshakes)}: {r['rate']:.0f}/s, {per} per CPU-s")


def saturated(server_util: float, load_busy: float) -> str:
    if server_util >= NOT_SATURATED:
        return "server"
    if load_busy >= NOT_SATURATED:
        return "client core"
    return "neither"


def summarize_handshakes(rounds: list[Json]) -> Json:
    def med(key: str) -> float:
        return statistics.median(r[key] or 0.0 for r in rounds)

    last = rounds[-1]
    out: Json = {k: med(k) for k in ("per_cpu_s", "rate", "server_core_util", "load_core_busy")}
    out |= {k: med(k) for k in ("p50_us", "p99_us", "client_cpu_seconds", "seconds")}
    out["failed"] = sum(r["failed"] for r in rounds)
    out["first_error"] = next((r["first_error"] for r in rounds if r.get("first_error")), "")
    out["saturated"] = saturated(out["server_core_util"], out["load_core_busy"])
    out |= {k: last.get(k, "?") for k in ("tls_version", "group", "cipher", "alpn", "peer_id")}
    out["rounds"] = rounds
    return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def describe(m: MtlsBench, err: Exception) -> str:
    """The error's text with the temporary directory shortened to $TMP."""
    return str(err).replace(str(m.bench.tmp), "$TMP")


def guarded(errors: dict[str, str], m: MtlsBench, t: Target, step: Callable[[], None]) -> None:
    """Run one measurement step; a failure stops the target and is recorded."""
    if t.name in errors:
        return
    try:
        step()
        check_pair_alive(m.bench, t)
    except RuntimeError as err:
        log(f"{t.name} failed: {err}")
        errors[t.name] = describe(m, err)
        for proc in t.procs() if isinstance(t, Pair) else []:
            if proc in m.bench.procs.procs:
                m.bench.procs.stop(proc)


def run_all(m: MtlsBench, names: list[str], sidecars: dict[str, Sidecar]) -> dict[str, Json]:
    """Start the pairs; handshake rounds, latency runs, wrk rounds, each interleaved."""
    b, rounds = m.bench, m.bench.settings.rounds
    errors: dict[str, str] = {}
    targets: list[Target] = []
    start_backend(b)
    for name in names:
        if name == "direct":
            targets.append(Target("direct", f"http://127.0.0.1:{b.backend_port}/"))
            continue
        try:
            targets.append(start_pair(m, sidecars[name]))
        except RuntimeError as err:
            log(f"{name} failed: {err}")
            errors[name] = describe(m, err)
    pairs = [t for t in targets if isinstance(t, Pair)]
    for _ in range(rounds):
        for p in pairs:
            guarded(errors, m, p, partial(measure_handshakes, m, p))
    for step in [measure_latency] + [measure_round] * rounds:
        for t in targets:
            guarded(errors, m, t, partial(step, b, t))
    done = {t.name: t for t in targets}
    results: dict[str, Json] = {}
    for name in names:
        if name in errors:
            results[name] = {"error": errors[name]}
            continue
        t = done[name]
        results[name] = summarize(t)
        if isinstance(t, Pair):
            results[name]["handshakes"] = summarize_handshakes(t.handshakes)
    return results


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def ok_pairs(results: dict[str, Json]) -> dict[str, Json]:
    return {n: r for n, r in results.items() if "error" not in r and "handshakes" in r}


def pct(share: float | None) -> str:
    return fmt(share * 100 if share is not None else None)


def handshake_table(results: dict[str, Json]) -> str:
    head = ["sidecar B", "handshakes / server CPU-s", "handshakes/s", "server core %"]
    head += ["load core %", "saturated", "failures", "conn p50 ms", "conn p99 ms"]
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"].splitlines()[0]] + [""] * 7)
            continue
        h = r.get("handshakes")
        if h is None:
            continue
        rows.append(
            [
                name,
                fmt(h["per_cpu_s"]),
                fmt(h["rate"]),
                pct(h["server_core_util"]),
                pct(h["load_core_busy"]),
                h["saturated"],
                f"{h['failed']} (!)" if h["failed"] else "0",
                fmt(h["p50_us"] / 1000, 2),
                fmt(h["p99_us"] / 1000, 2),
            ]
        )
    return table(head, rows)


def added(r: Json, direct: Json | None, key: str) -> float | None:
    return r["latency"][key] - direct["latency"][key] if direct else None


def path_table(results: dict[str, Json], rate: int) -> str:
    head = ["path", "max req/s (median)", "wrk errors", "pair core %", "CPU µs/req"]
    head += [f"p50 µs @{rate}", f"p99 µs @{rate}", "added p50 µs", "added p99 µs"]
    head += ["added p50 per hop µs", "rate achieved"]
    direct = results.get("direct")
    direct = direct if direct and "error" not in direct else None
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"].splitlines()[0]] + [""] * 10)
            continue
        lat, errs, is_pair = r["latency"], r["wrk_errors"], "handshakes" in r
        add50, add99 = (added(r, direct, k) if is_pair else None for k in ("p50_us", "p99_us"))
        rows.append(
            [
                f"{name} pair" if is_pair else name,
                fmt(r["rps"]),
                f"{errs} (!)" if errs else "0",
                pct(r.get("proxy_core_util")),
                fmt(r.get("cpu_us_per_req"), 1),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                fmt(add50),
                fmt(add99),
                fmt(add50 / 2 if add50 is not None else None),
                fmt(lat["actual_rate"]) + ("" if sustained(lat) else " (!)"),
            ]
        )
    return table(head, rows)


def goal_checks(results: dict[str, Json]) -> list[tuple[str, str, bool]]:
    pairs, direct = ok_pairs(results), results.get("direct")
    m, e = pairs.get("meshpy"), pairs.get("envoy")
    checks: list[tuple[str, str, bool]] = []
    if m and e:
        hs = m["handshakes"]["per_cpu_s"] / e["handshakes"]["per_cpu_s"]
        rps = m["rps"] / e["rps"]
        checks += [
            ("TLS handshakes per server CPU-s >= Envoy's", f"{hs:.2f}x", hs >= 1.0),
            ("two-hop req/s >= 1.0x Envoy pair", f"{rps:.2f}x", rps >= 1.0),
        ]
    if m and direct and "error" not in direct:
        add50 = (m["latency"]["p50_us"] - direct["latency"]["p50_us"]) / 2
        if e:
            m99, e99 = (added(x, direct, "p99_us") or 0.0 for x in (m, e))
            ok = e99 > 0 and m99 <= GOAL_P99_ADDED * e99
            value = f"{m99 / e99:.2f}x" if e99 > 0 else "-"
            checks.append((f"added p99 <= {GOAL_P99_ADDED}x Envoy pair's", value, ok))
        checks.append(
            (
                f"added p50 per hop <= {GOAL_P50_PER_HOP_US:.0f} µs",
                f"{add50:.0f} µs",
                add50 <= GOAL_P50_PER_HOP_US,
            )
        )
    return checks


def mtls_notes(results: dict[str, Json]) -> list[str]:
    out = notes(results)
    for name, r in ok_pairs(results).items():
        h = r["handshakes"]
        if h["failed"]:
            out.append(f"{name}: {h['failed']} handshake connections failed: {h['first_error']}")
        if h["saturated"] != "server":
            out.append(
                f"{name}: the handshake server used {h['server_core_util'] * 100:.0f}% of its "
                f"core ({h['saturated']} saturated), so handshakes/s is a lower bound; "
                "handshakes per server CPU-s is the figure to compare"
            )
        spread = [x["per_cpu_s"] or 0.0 for x in h["rounds"]]
        if len(spread) > 1 and (max(spread) - min(spread)) / statistics.median(spread) > 0.10:
            vals = ", ".join(f"{v:.0f}" for v in spread)
            out.append(f"{name}: handshake rounds differ by more than 10% ({vals} per CPU-s)")
    return out


def report(results: dict[str, Json], meta: Json) -> str:
    s, h, mach = meta["settings"], meta["handshake"], meta["machine"]
    pair = next((r["handshakes"] for r in ok_pairs(results).values()), None)
    negotiated = (
        f"{pair['tls_version']}, {pair['group']}, {pair['cipher']}, ALPN {pair['alpn']}"
        if pair
        else "-"
    )
    parts = [
        f"Run on {meta['date']}: {mach['cpu_model']} ({mach['cpus']} CPUs), {mach['memory']} "
        f"RAM, Linux {mach['kernel']}, {mach['os']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        f"Settings: both sidecars on CPU {s['proxy_cpu']}, backend and load generators on CPU "
        f"{s['load_cpu']}. Handshakes: tlsload -c {h['connections']}, {s['rounds']} x "
        f"{h['seconds']:g} s, offering {h['curves']}; negotiated {negotiated}. Two-hop: "
        f"wrk -t1 -c{s['connections']}, {s['rounds']} x {s['wrk_seconds']:g} s after a "
        f"{s['warmup_seconds']:g} s warm-up; fortio {s['rate']} req/s, "
        f"-c {s['latency_connections']}, {s['latency_seconds']:g} s.",
        "",
        "Full mTLS handshakes (new connection, handshake, one request, close):",
        "",
        handshake_table(results),
        "",
        "Two-sidecar path (wrk/fortio -> A -> mTLS, HTTP/2 -> B -> backend):",
        "",
        path_table(results, s["rate"]),
    ]
    parts += goal_section(goal_checks(results))
    parts += notes_section(mtls_notes(results), "path", meta)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = load_parser(
        (__doc__ or "").split("\n")[0],
        ALL_TARGETS,
        rounds="handshake and wrk rounds (median reported)",
        cpu="core for both sidecars",
        readme="rewrite the README's mTLS results",
        keep="keep the certificates, configs and logs",
    )
    add = p.add_argument
    add("--handshake-duration", type=float, default=10.0, help="seconds per handshake round")
    add("--handshake-connections", type=int, default=16, help="tlsload concurrent connections")
    add("--curves", default="X25519", help="key exchange groups tlsload offers")
    args = parse_load_args(p, argv, ALL_TARGETS)
    if args.quick:
        args.handshake_duration = 5.0
    return args


def settings_from(args: argparse.Namespace) -> tuple[Settings, HandshakeSettings]:
    settings = Settings(
        rounds=args.rounds,
        wrk_seconds=args.duration,
        warmup_seconds=args.warmup,
        latency_seconds=args.latency_duration,
        rate=args.rate,
        connections=args.connections,
        latency_connections=args.latency_connections,
        proxy_cpu=args.proxy_cpu,
        load_cpu=args.load_cpu,
        max_wait_idle=args.max_wait_idle,
    )
    hs = HandshakeSettings(args.handshake_duration, args.handshake_connections, args.curves)
    return settings, hs


def versions(tools: dict[str, str], sidecars: dict[str, Sidecar]) -> dict[str, str]:
    out = {name: s.version() for name, s in sidecars.items()}
    return out | {
        "backend nginx": version_of([tools["nginx"], "-v"], r"nginx/(\S+)"),
        "wrk": version_of([tools["wrk"], "-v"], r"wrk (\S+)"),
        "fortio": version_of([tools["fortio"], "version"], r"(\d+\.\d+\.\d+)"),
        "tlsload built with Go": go_version(),
    }


def on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    tools = install_tools([n for n in args.proxies if n in SIDECARS])
    tools["tlsload"] = ensure_tlsload()
    sidecars = make_sidecars(tools)
    settings, hs = settings_from(args)
    meta: Json = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": versions(tools, sidecars),
        "settings": asdict(settings),
        "handshake": asdict(hs),
        "identities": {"server": SERVER_ID, "client": CLIENT_ID},
        "meshpy_build": meshpy_build(tools["meshpy"]) if "meshpy" in tools else None,
    }
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the sidecars' core
    tmp = Path(tempfile.mkdtemp(prefix="meshpy-mtls-"))
    bench = Bench(tools, settings, Processes(tmp), tmp)
    try:
        mtls = MtlsBench(bench, make_pki(tmp / "pki"), hs)
        results = run_all(mtls, args.proxies, sidecars)
    finally:
        bench.procs.stop_all()
        if args.keep_tmp:
            log(f"certificates, configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    text = report(results, meta)
    print(text)
    log(f"wrote {save_json(results, meta, 'mtls').relative_to(REPO)}")
    if args.write_readme:
        write_readme(text, MARK_START, MARK_END, "mTLS: handshakes and a two-sidecar path")
        log("updated benches/README.md")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
