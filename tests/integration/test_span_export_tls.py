"""Spans to the user's own collector over https, as OpenTelemetry's variables name it: the
collector's certificate is checked against the PEM file given, and with
``MESHPY_TRACES_TO_CONTROL_PLANE=false`` the control plane's trace store gets nothing."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.otlpreceiver import otlp_receiver
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env={**FAST_LEASES, "MESHPY_TRACE_SAMPLE_PERCENT": "100"})


def _collector_tls(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 (its PEM file) and a server context with it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "collector")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "collector.pem", directory / "collector.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


def test_spans_go_to_an_https_collector_instead_of_the_control_plane(
    server: ServerProcess, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    ca_file, context = _collector_tls(tmp_path)
    with otlp_receiver(tls=context) as collector:
        env = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url,
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(ca_file),
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=shop",
            "MESHPY_TRACES_TO_CONTROL_PLANE": "false",
        }
        start_sidecar("cart", app=APP, env=env)
        loadgen = start_sidecar("loadgen", env=env)
        url = f"http://{loadgen.addresses['outbound']}/"
        answer = httpx.get(url, headers={"host": "cart"}, timeout=15)
        assert answer.status_code == 200, answer.text
        spans = collector.wait_for_spans(2, timeout=15)
        assert sorted(span.kind for span in spans) == [2, 3], "cart's server, loadgen's client"
        assert len({span.trace_id for span in spans}) == 1
        assert all(export.headers.get("x-tenant") == "shop" for export in collector.exports)
        assert {export.resource["service.name"] for export in collector.exports} == {
            "cart",
            "loadgen",
        }
    time.sleep(2)  # the sidecars export every 100 ms: anything sent there would be in by now
    stored = server.client().get("/api/v1/traces").json()
    assert stored["items"] == [], stored
