"""Test helpers: CSRs of every shape, a settable clock, and a SPIFFE X509-SVID checker.

``check_svid`` follows the SPIFFE X509-SVID standard clause by clause (section numbers
in the messages) and verifies the chain with ``openssl verify`` in a subprocess.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from spiffe import SpiffeId, X509Svid

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class FakeClock:
    """A clock that moves only when told to (starts at the real time, to the second)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(
    uris: list[str],
    *,
    key: Key | None = None,
    common_name: str | None = None,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
    emails: list[str] | None = None,
    ca: bool = False,
) -> tuple[str, Key]:
    """A PEM CSR with these subject alternative names; returns it and its key."""
    key = key if key is not None else ec_key()
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns or []]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    names += [x509.RFC822Name(e) for e in emails or []]
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def with_bad_signature(pem: str) -> str:
    """The same CSR with one bit of its signature flipped."""
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    csr = x509.load_der_x509_csr(bytes(der))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def openssl_verify(
    tmp_path: Path, bundle_pem: str, chain_pem: str, *, at: datetime | None = None
) -> subprocess.CompletedProcess[str]:
    """``openssl verify -CAfile <bundle> -untrusted <intermediates> <leaf>`` (at ``at``)."""
    leaf, *intermediates = certificates(chain_pem)
    tag = f"{leaf.serial_number:x}"
    files = {
        "bundle": bundle_pem,
        "untrusted": "".join(_pem(c) for c in intermediates),
        "leaf": _pem(leaf),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{tag}-{name}.pem"
        paths[name].write_text(text)
    argv = ["openssl", "verify", "-CAfile", str(paths["bundle"])]
    argv += ["-untrusted", str(paths["untrusted"])]
    if at is not None:
        argv += ["-attime", str(int(at.timestamp()))]
    argv.append(str(paths["leaf"]))
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def check_svid(
    tmp_path: Path,
    chain_pem: str,
    bundle_pem: str,
    *,
    trust_domain: str,
    spiffe_id: str,
    key: Key,
    at: datetime | None = None,
) -> None:
    """Assert that ``chain_pem`` is a conforming X509-SVID for ``spiffe_id``."""
    leaf, *signing = certificates(chain_pem)
    roots = certificates(bundle_pem)

    # §2 "An X.509 SVID MUST contain exactly one URI SAN, and by extension, exactly one
    # SPIFFE ID."
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert len(uris) == 1, f"§2: one URI SAN, found {uris}"
    assert len(list(san)) == 1, f"§2: the URI is the only SAN, found {list(san)}"
    parsed = SpiffeId(uris[0])  # the reference parser: raises on an invalid SPIFFE ID
    assert str(parsed) == spiffe_id, f"§2: {parsed} is not {spiffe_id}"
    assert str(parsed.trust_domain) == trust_domain, "§2: the trust domain"
    assert parsed.path, "§2: a leaf's SPIFFE ID has a path"

    # §4.1 "Leaf certificates MUST set the cA field to false."
    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.value.ca is False, "§4.1: leaf CA=false"
    assert bc.critical, "basicConstraints is critical"

    # §4.3 "Leaf SVIDs MUST set digitalSignature. They MUST NOT set keyCertSign or cRLSign."
    # "This extension MUST be marked critical."
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical, "§4.3: keyUsage is critical"
    assert ku.value.digital_signature, "§4.3: digitalSignature"
    assert not ku.value.key_cert_sign, "§4.3: no keyCertSign on a leaf"
    assert not ku.value.crl_sign, "§4.3: no cRLSign on a leaf"

    # §4.4 "Leaf SVIDs SHOULD include this extension [EKU], and it MAY be marked as
    # critical. When included, fields id-kp-serverAuth and id-kp-clientAuth MUST be set."
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku, "§4.4: serverAuth"
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku, "§4.4: clientAuth"

    # §4.1 / §4.3 for signing certificates: "Signing certificates MUST set the cA field to
    # true" and "MUST set keyCertSign".
    for cert in [*signing, *roots]:
        name = cert.subject.rfc4514_string()
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca, name
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign, name

    # Key identifiers, and a random positive serial of 128 bits at most.
    leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert 0 < leaf.serial_number < 2**128

    # The reference library's own SVID checks (leaf and intermediates).
    svid = X509Svid.parse(chain_pem.encode(), key_pem(key))
    assert str(svid.spiffe_id) == spiffe_id

    # §5 validation: the chain leads to a root of the bundle.
    verified = openssl_verify(tmp_path, bundle_pem, chain_pem, at=at)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip().endswith(": OK"), verified.stdout


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
