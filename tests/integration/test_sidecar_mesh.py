"""Real sidecars (`meshpy proxy run --service`) and a real control plane: mTLS end to end.

Each test runs a `meshpy server` process and sidecar processes that register, get their
certificates from the server's CA, follow their config and call each other by service
name over mutual TLS.
"""

from __future__ import annotations

import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.backends import HttpBackend
from tests.integration.conftest import StartServer
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import (
    Load,
    serials,
    spawn_sidecar,
    wait_for_new_serial,
    wait_sidecar_ready,
)

FAST_LEASES = {
    "MESHPY_LEASE_TTL": "3s",
    "MESHPY_HEALTH_THRESHOLD": "1",
    "MESHPY_REMOVAL_GRACE": "120s",
}


@dataclass
class Mesh:
    """A control plane, a `payment` sidecar in front of a backend, and a `cart` sidecar."""

    server: ServerProcess
    payment: ProxyProcess
    cart: ProxyProcess
    backend: HttpBackend
    procs: list[ProxyProcess] = field(default_factory=list)

    def call_payment(self, client: httpx.Client, path: str = "/charge") -> httpx.Response:
        """A request from the cart app: through its sidecar's outbound, to `payment`."""
        return client.get(
            f"http://{self.cart.addresses['outbound']}{path}", headers={"host": "payment"}
        )


StartMesh = Callable[..., Mesh]


@pytest.fixture
def start_mesh(
    tmp_path: Path,
    start_server: StartServer,
    http_backend: Callable[[str], HttpBackend],
) -> Iterator[StartMesh]:
    started: list[ProxyProcess] = []

    def start(**env: str) -> Mesh:
        server = start_server(env={**FAST_LEASES, **env})
        backend = http_backend("payment-app")
        app_port = backend.address.rsplit(":", 1)[1]
        payment = spawn_sidecar(tmp_path, server, "payment", "--app-port", app_port)
        cart = spawn_sidecar(tmp_path, server, "cart")
        started.extend([payment, cart])
        wait_sidecar_ready(payment)
        wait_sidecar_ready(cart)
        mesh = Mesh(server, payment, cart, backend, started)
        _wait_until_routed(mesh)
        return mesh

    yield start
    for proc in started:
        proc.stop()


def _wait_until_routed(mesh: Mesh, timeout: float = 20.0) -> None:
    """Until cart's config has payment's endpoint (it turns healthy after its first report)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while True:
            answer = mesh.call_payment(client)
            if answer.status_code == 200:
                return
            if time.monotonic() > deadline:
                msg = f"payment never reachable: {answer.status_code} {answer.headers}"
                raise AssertionError(msg)
            time.sleep(0.1)


def _inbound(sidecar: ProxyProcess) -> tuple[str, int]:
    host, _, port = sidecar.addresses["inbound"].rpartition(":")
    return host, int(port)


def test_sidecars_call_each_other_by_name_over_mtls(start_mesh: StartMesh) -> None:
    mesh = start_mesh()
    with httpx.Client(timeout=5) as client:
        answer = client.get(
            f"http://{mesh.cart.addresses['outbound']}/charge",
            headers={
                "host": "payment",
                "x-meshpy-client-id": "spiffe://meshpy.local/ns/x/sa/forged",
            },
        )
    assert answer.status_code == 200
    assert answer.json()["backend"] == "payment-app"
    seen = mesh.backend.seen[-1]
    # The payment sidecar says who called, from the verified certificate, never the forgery.
    assert seen.header("x-meshpy-client-id") == ["spiffe://meshpy.local/ns/default/sa/cart"]

    # The inbound port speaks nothing but mTLS: plaintext and certificate-less TLS fail.
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.TransportError):
        client.get(f"http://{mesh.payment.addresses['inbound']}/charge")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _tls_request_without_a_certificate(*_inbound(mesh.payment))

    status = mesh.server.client().get("/api/v1/proxies").json()
    assert {p["service"]: p["status"] for p in status} == {"cart": "SYNCED", "payment": "SYNCED"}


def _tls_request_without_a_certificate(host: str, port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with context.wrap_socket(socket.create_connection((host, port), timeout=5)) as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nhost: payment\r\n\r\n")
        answer = tls.recv(1)
    if not answer:
        msg = "closed"
        raise ConnectionError(msg)
    return answer


def test_traffic_between_sidecars_is_encrypted_on_the_wire(
    start_mesh: StartMesh, tmp_path: Path
) -> None:
    mesh = start_mesh()
    # The cart sidecar may already hold a pooled connection: a new payment instance makes
    # sure the capture sees a whole connection from its handshake on.
    _, port = _inbound(mesh.payment)
    capture = tmp_path / "wire.pcap"
    tshark = subprocess.Popen(
        ["tshark", "-i", "lo", "-f", f"tcp port {port}", "-w", str(capture), "-q"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_capturing(tshark)
        # Restarting the cart sidecar drops its pooled connection to payment.
        mesh.cart.stop()
        cart = spawn_sidecar(tmp_path, mesh.server, "cart", name="cart-2")
        mesh.procs.append(cart)
        mesh.cart = wait_sidecar_ready(cart)
        _wait_until_routed(mesh)
        with httpx.Client(timeout=5) as client:
            for i in range(20):
                answer = mesh.call_payment(client, f"/secret-path-{i}?card=4111111111111111")
                assert answer.status_code == 200
        time.sleep(0.5)
    finally:
        tshark.send_signal(signal.SIGINT)
        tshark.wait(15)
        assert tshark.stderr is not None
        tshark.stderr.close()
    payloads = _payloads(capture)
    wire = b"".join(payloads)
    assert len(wire) > 2000, "nothing captured"
    for plaintext in (
        b"secret-path",
        b"4111111111111111",
        b"HTTP/1.1",
        b"PRI * HTTP/2.0",
        b"payment-app",
        b"x-meshpy-client-id",
    ):
        assert plaintext not in wire
    # TLS records only: handshake (0x16) first, then application data (0x17).
    assert any(p.startswith(b"\x16\x03") for p in payloads)
    assert any(p.startswith(b"\x17\x03") for p in payloads)


def _wait_capturing(tshark: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    assert tshark.stderr is not None
    deadline = time.monotonic() + timeout
    line = b""
    while b"Capturing on" not in line:
        if time.monotonic() > deadline or tshark.poll() is not None:
            msg = f"tshark did not start capturing: {line!r}"
            raise AssertionError(msg)
        line = tshark.stderr.readline()


def _payloads(capture: Path) -> list[bytes]:
    fields = subprocess.run(
        ["tshark", "-r", str(capture), "-T", "fields", "-e", "tcp.payload"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    return [bytes.fromhex(line.replace(":", "")) for line in fields.split() if line]


def _load(mesh: Mesh) -> Load:
    """Requests from the cart app's side to payment, through cart's sidecar."""
    return Load(f"http://{mesh.cart.addresses['outbound']}/charge", host="payment")


def _served_certificate(sidecar: ProxyProcess) -> str:
    """The serial (hex) of the certificate the sidecar's inbound presents to a new client."""
    host, port = _inbound(sidecar)
    shown = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_3"],
        input=b"",
        capture_output=True,
        timeout=20,
        check=False,
    ).stdout
    leaf = shown[shown.index(b"-----BEGIN CERTIFICATE-----") :]
    leaf = leaf[: leaf.index(b"-----END CERTIFICATE-----") + 25]
    serial = subprocess.run(
        ["openssl", "x509", "-noout", "-serial"], input=leaf, capture_output=True, check=True
    ).stdout.decode()
    return serial.strip().removeprefix("serial=").lower().lstrip("0")


@pytest.mark.alone
@pytest.mark.timeout(300)
def test_certificates_and_the_root_rotate_under_load_without_a_failed_request(
    start_mesh: StartMesh, tmp_path: Path
) -> None:
    # 30 s leaves, renewed at ~2/3 of their life, over two minutes; the root rotates too.
    mesh = start_mesh(MESHPY_CERT_TTL="30s")
    first = mesh.server.client().get("/api/v1/identity/trust-bundle").json()
    with _load(mesh) as load:
        time.sleep(5)
        rotated = mesh.server.client().post("/api/v1/identity/ca/rotate")
        assert rotated.status_code == 200, rotated.text
        time.sleep(45)
        # A sidecar that joins mid-rotation trusts, and is trusted by, everyone.
        late = spawn_sidecar(tmp_path, mesh.server, "cart", name="cart-late")
        mesh.procs.append(late)
        wait_sidecar_ready(late)
        time.sleep(70)
        with httpx.Client(timeout=5) as client:
            for _ in range(20):
                answer = client.get(
                    f"http://{late.addresses['outbound']}/", headers={"host": "payment"}
                )
                assert answer.status_code == 200
    assert load.failures == [], load.failures[:10]
    assert load.ok > 1000
    # Every sidecar renewed several times, and the inbound presents the newest leaf.
    for sidecar in (mesh.payment, mesh.cart):
        assert len(set(serials(sidecar))) >= 4, sidecar.log()
    assert _served_certificate(mesh.payment) == serials(mesh.payment)[-1].lstrip("0")
    # The root changed: the bundle now holds only the new root.
    bundle = mesh.server.client().get("/api/v1/identity/trust-bundle").json()
    assert [r["state"] for r in bundle["roots"]] == ["active"]
    assert bundle["roots"][0]["fingerprint_sha256"] != first["roots"][0]["fingerprint_sha256"]


@pytest.mark.alone
@pytest.mark.timeout(180)
def test_sidecars_keep_serving_while_the_ca_is_down_and_recover(
    start_mesh: StartMesh, start_server: StartServer
) -> None:
    mesh = start_mesh(MESHPY_CERT_TTL="20s")
    port = mesh.server.url.rsplit(":", 1)[1]
    installed = len(serials(mesh.payment))
    stopping = time.monotonic()
    assert mesh.server.stop() == 0
    # The sidecars' config long-polls (30 s) do not hold the shutdown up.
    assert time.monotonic() - stopping < 8
    with _load(mesh) as load:
        # Renewals are due at ~13 s: they fail, and the old certificates keep serving.
        mesh.payment.wait_for_log(r"certificate renewal failed", timeout=25)
        time.sleep(2)
    assert load.failures == [], load.failures[:10]
    assert load.ok > 100
    assert len(serials(mesh.payment)) == installed
    # Back on the same address, same data: the sidecars renew by themselves.
    server = start_server(
        mesh.server.home,
        args=("--listen", f"127.0.0.1:{port}"),
        env={**FAST_LEASES, "MESHPY_CERT_TTL": "20s"},
    )
    mesh.server = server
    wait_for_new_serial(mesh.payment, installed, timeout=60)
    # Leases ran out while the control plane was away; the sidecars renew them too.
    _wait_until_routed(mesh)
    status = server.client().get("/api/v1/proxies").json()
    assert {p["service"] for p in status} == {"cart", "payment"}
