"""The certificates of an mTLS run: root -> intermediate -> SPIFFE leaves, ECDSA P-256."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # pragma: no cover - depends on the interpreter
    script = f"benches/{Path(sys.argv[0]).name}"
    sys.exit(f"{script} needs `cryptography`: run it with .venv/bin/python (see benches/README.md)")

from harness.identities import CLIENT_ID, SERVER_ID, Identity, Pki


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
