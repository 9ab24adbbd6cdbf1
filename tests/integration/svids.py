"""Test X.509-SVIDs made with ``cryptography``: roots, intermediates and SPIFFE leaves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = dt.datetime.now(dt.UTC)
_PEM = serialization.Encoding.PEM


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(_PEM).decode()


@dataclass
class Leaf:
    """A leaf certificate, its chain (leaf first, then intermediates) and its key, as PEM."""

    cert: x509.Certificate
    chain_pem: str
    key_pem: str

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``name.pem`` (the chain) and ``name.key`` into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        chain, key = directory / f"{name}.pem", directory / f"{name}.key"
        chain.write_text(self.chain_pem)
        key.write_text(self.key_pem)
        return chain, key


@dataclass
class Ca:
    """A certificate authority that signs intermediates and leaves."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    chain_below: str
    """What follows a certificate it signs in a chain: nothing for a root."""

    @property
    def pem(self) -> str:
        """This CA's certificate."""
        return _pem(self.cert)

    @classmethod
    def root(cls, name: str) -> Ca:
        """A self-signed root."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = _ca_builder(subject, subject, key.public_key()).sign(key, hashes.SHA256())
        return cls(key, cert, "")

    def intermediate(self, name: str) -> Ca:
        """An intermediate signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = _ca_builder(subject, self.cert.subject, key.public_key())
        cert = builder.sign(self.key, hashes.SHA256())
        return Ca(key, cert, _pem(cert) + self.chain_below)

    def leaf(
        self,
        uris: list[str],
        *,
        serial: int | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        sec1_key: bool = False,
    ) -> Leaf:
        """A leaf with ``uris`` as URI SANs and an empty subject (an X.509-SVID for one URI)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(not_before or _NOW - dt.timedelta(hours=1))
            .not_valid_after(not_after or _NOW + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if uris:
            names = [x509.UniformResourceIdentifier(u) for u in uris]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
        cert = builder.sign(self.key, hashes.SHA256())
        key_format = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if sec1_key
            else serialization.PrivateFormat.PKCS8
        )
        key_pem = key.private_bytes(_PEM, key_format, serialization.NoEncryption()).decode()
        return Leaf(cert, _pem(cert) + self.chain_below, key_pem)

    def expired_leaf(self, uri: str) -> Leaf:
        """A leaf whose validity ended a day ago."""
        return self.leaf(
            [uri],
            not_before=_NOW - dt.timedelta(days=3),
            not_after=_NOW - dt.timedelta(days=1),
        )


def _ca_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
