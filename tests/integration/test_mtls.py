"""mTLS with SPIFFE identities from Python: `meshpy proxy run` with identity files (openssl as
the client), identity reloads on SIGHUP, and the identity API of ``meshpy._core``."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshpy import _core
from meshpy.dataplane import Proxy, ProxyConfig, check_config
from tests.integration.proxyproc import proxy_config
from tests.integration.svids import Ca, Leaf

WEB_ID = "spiffe://meshpy.test/ns/default/sa/web"
CLIENT_ID = "spiffe://meshpy.test/ns/default/sa/client"
IDENTITY = {"cert_chain": "certs/web.pem", "key": "certs/web.key", "roots": "certs/roots.pem"}
REQUEST = "GET /hello HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n"


@dataclass
class Mesh:
    """The test mesh's CA: leaves come from ``ca``, an intermediate under ``roots``."""

    ca: Ca
    roots: str


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    root = Ca.root("meshpy test root")
    return Mesh(root.intermediate("meshpy test intermediate"), root.pem)


def _install(tmp_path: Path, mesh: Mesh, web: Leaf) -> None:
    """Write the web identity into ``tmp_path/certs`` as IDENTITY names it."""
    web.write(tmp_path / "certs", "web")
    (tmp_path / "certs" / "roots.pem").write_text(mesh.roots)


def _s_client(
    address: str, leaf_files: tuple[Path, Path] | None
) -> subprocess.CompletedProcess[str]:
    """One HTTP/1.1 request with openssl s_client over TLS 1.3 (ALPN http/1.1)."""
    args = ["openssl", "s_client", "-connect", address, "-tls1_3", "-alpn", "http/1.1", "-quiet"]
    if leaf_files is not None:
        chain, key = (str(path) for path in leaf_files)
        # -cert sends the leaf alone; -cert_chain adds the intermediates.
        args += ["-cert", chain, "-cert_chain", chain, "-key", key]
    return subprocess.run(
        args, input=REQUEST, capture_output=True, text=True, timeout=30, check=False
    )


def _presented_serial(address: str, leaf_files: tuple[Path, Path]) -> int:
    """The serial of the certificate the server presents on a new handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(*leaf_files)
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_proxy_run_serves_mtls_with_identity_files(
    mesh, tmp_path, http_backend, start_proxy
) -> None:
    backend = http_backend("app")
    web = mesh.ca.leaf([WEB_ID])
    _install(tmp_path, mesh, web)
    client = mesh.ca.leaf([CLIENT_ID]).write(tmp_path / "clients", "good")
    stranger = Ca.root("another root").leaf([CLIENT_ID]).write(tmp_path / "clients", "stranger")
    config = proxy_config(
        [backend.address], listener={"tls": {"mode": "strict"}}, identity=IDENTITY
    )
    proxy = start_proxy(config)
    proxy.wait_for_log(rf"^meshpy proxy: identity {WEB_ID} serial {web.cert.serial_number:x} ")
    address = proxy.addresses["web"]

    good = _s_client(address, client)
    assert good.stdout.startswith("HTTP/1.1 200"), good
    assert backend.count == 1
    assert backend.seen[0].header("x-meshpy-client-id") == [CLIENT_ID]

    for refused in (_s_client(address, None), _s_client(address, stranger)):
        assert "HTTP/1.1" not in refused.stdout, refused
        assert "alert" in refused.stderr, refused
    assert backend.count == 1

    admin = f"http://{proxy.addresses['admin']}"
    assert httpx.get(f"{admin}/ready", timeout=5).status_code == 200
    stats = httpx.get(f"{admin}/stats", timeout=5).json()
    assert stats["identity"]["identity"] == WEB_ID
    metrics = httpx.get(f"{admin}/metrics", timeout=5).text
    assert 'meshpy_tls_handshakes_total{listener="web",result="ok"} 1' in metrics
    assert 'meshpy_tls_handshakes_total{listener="web",result="failed"} 2' in metrics


def test_sighup_reloads_the_identity_and_keeps_it_when_bad(
    mesh, tmp_path, http_backend, start_proxy
) -> None:
    backend = http_backend("app")
    first = mesh.ca.leaf([WEB_ID], serial=0x1001)
    _install(tmp_path, mesh, first)
    client = mesh.ca.leaf([CLIENT_ID]).write(tmp_path / "clients", "good")
    config = proxy_config(
        [backend.address], listener={"tls": {"mode": "strict"}}, identity=IDENTITY
    )
    proxy = start_proxy(config)
    address = proxy.addresses["web"]
    assert _presented_serial(address, client) == 0x1001

    _install(tmp_path, mesh, mesh.ca.leaf([WEB_ID], serial=0x1002))
    proxy.reload()
    proxy.wait_for_log(rf"^meshpy proxy: identity {WEB_ID} serial 1002 valid until ")
    assert _presented_serial(address, client) == 0x1002

    mesh.ca.expired_leaf(WEB_ID).write(tmp_path / "certs", "web")
    proxy.reload()
    proxy.wait_for_log(
        r"^error: proxy\.yaml: identity refused: cert_chain: the certificate expired at .*"
        rf"\(still serving identity {WEB_ID}\)$"
    )
    proxy.wait_for_log(r"^meshpy proxy: applied version 3$")
    assert _presented_serial(address, client) == 0x1002
    assert _s_client(address, client).stdout.startswith("HTTP/1.1 200")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ("expired", "error: proxy.yaml: identity refused: cert_chain: the certificate expired at"),
        ("missing key", "error: proxy.yaml: identity.key: "),
        ("wrong key", "error: proxy.yaml: identity refused: key: does not match"),
    ],
)
def test_bad_identity_at_start_exits_2(mesh, tmp_path, start_proxy, files, expected) -> None:
    web = mesh.ca.expired_leaf(WEB_ID) if files == "expired" else mesh.ca.leaf([WEB_ID])
    _install(tmp_path, mesh, web)
    if files == "missing key":
        (tmp_path / "certs" / "web.key").unlink()
    if files == "wrong key":
        (tmp_path / "certs" / "web.key").write_text(mesh.ca.leaf([WEB_ID]).key_pem)
    config = proxy_config(["127.0.0.1:9"], listener={"tls": {}}, identity=IDENTITY)
    proxy = start_proxy(config, ready=False)
    assert proxy.wait(15) == 2
    lines = proxy.log().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines


def test_tls_without_identity_is_not_ready_and_permissive_serves_plaintext(
    http_backend, start_proxy
) -> None:
    backend = http_backend("app")
    config = proxy_config([backend.address], listener={"tls": {"mode": "permissive"}})
    proxy = start_proxy(config)
    ready = httpx.get(f"http://{proxy.addresses['admin']}/ready", timeout=5)
    assert ready.status_code == 503
    assert "no identity" in ready.text
    spoofed = {"x-meshpy-client-id": "spiffe://evil.example/x"}
    assert httpx.get(proxy.url("/"), headers=spoofed, timeout=5).status_code == 200
    assert backend.seen[-1].header("x-meshpy-client-id") == []


def test_generate_csr_makes_a_p256_key_and_an_svid_request() -> None:
    key_pem, csr_pem = _core.generate_csr(CLIENT_ID)
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert len(csr.subject) == 0
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(CLIENT_ID)]
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert csr.public_key().public_bytes(*public) == key.public_key().public_bytes(*public)
    assert _core.generate_csr(CLIENT_ID)[0] != key_pem
    with pytest.raises(ValueError, match="has no path"):
        _core.generate_csr("spiffe://meshpy.test")


def test_set_identity_returns_what_the_certificate_says(mesh) -> None:
    web = mesh.ca.leaf([WEB_ID], serial=0xABC, sec1_key=True)
    assert web.key_pem.startswith("-----BEGIN EC PRIVATE KEY-----")
    proxy = _core.Proxy(json.dumps({"workers": 1}))
    try:
        assert proxy.identity() is None
        info = proxy.set_identity(web.chain_pem, web.key_pem, mesh.roots)
        assert info["identity"] == WEB_ID
        assert info["serial"] == "abc"
        assert info["not_before"] == web.cert.not_valid_before_utc.timestamp()
        assert info["not_after"] == web.cert.not_valid_after_utc.timestamp()
        assert "meshpy test intermediate" in info["issuer"]
        assert proxy.identity() == info
        assert _core.certificate_info(web.chain_pem) == info
        assert _core.certificate_info(mesh.roots)["identity"] is None
        assert "meshpy_identity_cert_expiration_timestamp_seconds" in proxy.metrics()
    finally:
        proxy.shutdown(0.0)


def test_refused_identities_raise_identity_error_and_change_nothing(mesh) -> None:
    good = mesh.ca.leaf([WEB_ID], serial=0x77)
    roots = mesh.roots
    expired = mesh.ca.expired_leaf(WEB_ID)
    foreign = Ca.root("another root").leaf([WEB_ID])
    two = mesh.ca.leaf([WEB_ID, CLIENT_ID])
    proxy = _core.Proxy(json.dumps({"workers": 1}))
    try:
        proxy.set_identity(good.chain_pem, good.key_pem, roots)
        cases = [
            ((expired.chain_pem, expired.key_pem, roots), "expired"),
            ((good.chain_pem, two.key_pem, roots), "does not match"),
            ((foreign.chain_pem, foreign.key_pem, roots), "does not chain"),
            ((two.chain_pem, two.key_pem, roots), "2 URI SANs"),
            ((good.chain_pem, good.key_pem, "no roots here"), "roots holds no CERTIFICATE"),
        ]
        for args, fragment in cases:
            with pytest.raises(_core.IdentityError, match=fragment):
                proxy.set_identity(*args)
            assert proxy.identity()["serial"] == "77"  # type: ignore[index]
        assert issubclass(_core.IdentityError, _core.MeshpyError)
        with pytest.raises(ValueError, match="no CERTIFICATE"):
            _core.certificate_info("not pem")
    finally:
        proxy.shutdown(0.0)


def test_dataplane_proxy_loads_the_identity_of_a_config(mesh, tmp_path, http_backend) -> None:
    backend = http_backend("app")
    _install(tmp_path, mesh, mesh.ca.leaf([WEB_ID]))
    client = mesh.ca.leaf([CLIENT_ID]).write(tmp_path / "clients", "good")
    config: ProxyConfig = proxy_config([backend.address], listener={"tls": {}}, identity=IDENTITY)
    assert "identity" not in check_config(config, tmp_path).snapshot
    with Proxy.from_config(config, grace_s=1.0, base=tmp_path) as proxy:
        assert proxy.ready(), proxy.not_ready_reason()
        identity = proxy.identity()
        assert identity is not None
        assert identity["identity"] == WEB_ID
        answer = _s_client(proxy.addresses()["web"], client)
        assert answer.stdout.startswith("HTTP/1.1 200"), answer
