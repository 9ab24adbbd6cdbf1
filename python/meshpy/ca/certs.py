"""Make and check the CA's X.509 certificates: root, intermediate and SPIFFE leaf.

Every certificate meshpy makes carries subject and authority key identifiers. Signing
certificates (root: CA, pathlen 1; intermediate: CA, pathlen 0) have keyCertSign and
cRLSign, critical, and the trust domain's ID (``spiffe://<td>``) as their URI SAN. A leaf
follows the SPIFFE X509-SVID standard: an empty subject, its SPIFFE ID as its one URI SAN
(critical, as RFC 5280 asks of an empty subject), CA=false and digitalSignature alone,
both critical, and serverAuth + clientAuth.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshpy.errors import MeshpyError

__all__ = [
    "CLOCK_SKEW",
    "INTERMEDIATE_LIFETIME",
    "ROOT_LIFETIME",
    "CertificateError",
    "PrivateKey",
    "PublicKey",
    "check_issued_by",
    "check_key_matches",
    "check_signing_cert",
    "check_valid_at",
    "fingerprint",
    "key_to_pem",
    "load_certificate",
    "load_private_key",
    "make_intermediate",
    "make_leaf",
    "make_root",
    "new_key",
    "random_serial",
    "to_pem",
]

CLOCK_SKEW = timedelta(seconds=20)
"""Leaves start this long before they are issued: peers' clocks may be a little behind."""
ROOT_LIFETIME = timedelta(days=3650)
INTERMEDIATE_LIFETIME = timedelta(days=365)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
"""The key types a CA certificate of meshpy may have."""
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
_PRIVATE_KEY_TYPES = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
_PUBLIC_KEY_TYPES = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)


class CertificateError(MeshpyError, ValueError):
    """A certificate or key is unusable for the CA; ``str()`` says which and why."""


def new_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


def random_serial() -> int:
    """A random positive 128-bit serial number."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def make_root(
    key: PrivateKey, trust_domain: str, *, generation: int, now: datetime
) -> x509.Certificate:
    """A self-signed root: CA, pathlen 1, valid for ten years from ``now``."""
    name = _ca_name(trust_domain, f"root CA {generation}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_signing_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(_trust_domain_san(trust_domain), critical=False)
    )
    return builder.sign(key, _hash_for(key))


def make_intermediate(
    key: PrivateKey,
    root: x509.Certificate,
    root_key: PrivateKey,
    trust_domain: str,
    *,
    generation: int,
    now: datetime,
) -> x509.Certificate:
    """An intermediate signed by ``root``: CA, pathlen 0, one year (never past the root)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(trust_domain, f"intermediate CA {generation}"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + INTERMEDIATE_LIFETIME, root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_signing_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(root), critical=False)
        .add_extension(_trust_domain_san(trust_domain), critical=False)
    )
    return builder.sign(root_key, _hash_for(root_key))


def make_leaf(
    public_key: PublicKey,
    spiffe_id: str,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    serial: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A SPIFFE X509-SVID for ``spiffe_id`` signed by ``issuer``."""
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(eku, critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
    )
    return builder.sign(issuer_key, _hash_for(issuer_key))


# --- reading and checking ------------------------------------------------------------------


def load_certificate(data: bytes, what: str) -> x509.Certificate:
    """The one PEM certificate in ``data``; CertificateError names ``what`` otherwise."""
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        msg = f"{what}: not a PEM certificate"
        raise CertificateError(msg) from None
    if len(found) != 1:
        msg = f"{what}: expected one certificate, found {len(found)}"
        raise CertificateError(msg)
    return found[0]


def load_private_key(data: bytes, what: str) -> PrivateKey:
    """The unencrypted PEM private key in ``data`` (EC, RSA of 2048+ bits or Ed25519)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        msg = f"{what}: the key is encrypted; decrypt it first (openssl pkey -in FILE -out FILE)"
        raise CertificateError(msg) from None
    except (ValueError, UnicodeError):
        msg = f"{what}: not a PEM private key"
        raise CertificateError(msg) from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        msg = f"{what}: an RSA key of {key.key_size} bits is too weak (2048 at least)"
        raise CertificateError(msg)
    if not isinstance(key, _PRIVATE_KEY_TYPES):
        msg = f"{what}: unsupported key type {type(key).__name__}; use EC, RSA or Ed25519"
        raise CertificateError(msg)
    return key


def check_signing_cert(cert: x509.Certificate, what: str) -> None:
    """A certificate that may sign others: basicConstraints CA=true, keyUsage keyCertSign
    (the SPIFFE X509-SVID standard asks both of signing certificates)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        msg = f"{what}: not a CA certificate (it has no basicConstraints)"
        raise CertificateError(msg) from None
    if not constraints.ca:
        msg = f"{what}: not a CA certificate (basicConstraints CA=false)"
        raise CertificateError(msg)
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        msg = f"{what}: it has no keyUsage; a signing certificate needs keyCertSign"
        raise CertificateError(msg) from None
    if not usage.key_cert_sign:
        msg = f"{what}: its keyUsage lacks keyCertSign, so it cannot sign certificates"
        raise CertificateError(msg)


def check_key_matches(cert: x509.Certificate, key: PrivateKey, what: str) -> None:
    """``key`` is the private key of ``cert``'s public key."""
    if _spki(key.public_key()) != _spki(cert.public_key()):
        msg = f"{what}: the private key does not match the certificate's public key"
        raise CertificateError(msg)


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """``cert`` names ``issuer`` as its issuer and carries a valid signature of its key."""
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError:
        msg = (
            f"{what}: its issuer is {cert.issuer.rfc4514_string()!r}, "
            f"not {issuer.subject.rfc4514_string()!r}"
        )
        raise CertificateError(msg) from None
    except (InvalidSignature, TypeError):
        issuer_name = issuer.subject.rfc4514_string()
        msg = f"{what}: its signature does not verify with the key of {issuer_name!r}"
        raise CertificateError(msg) from None


def check_valid_at(cert: x509.Certificate, now: datetime, what: str) -> None:
    """``cert`` has started and not yet expired at ``now``."""
    if now >= cert.not_valid_after_utc:
        msg = f"{what}: expired at {cert.not_valid_after_utc.isoformat()}"
        raise CertificateError(msg)
    if now < cert.not_valid_before_utc:
        msg = f"{what}: not valid before {cert.not_valid_before_utc.isoformat()}"
        raise CertificateError(msg)


def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def to_pem(cert: x509.Certificate) -> str:
    """The certificate in PEM."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_to_pem(key: PrivateKey) -> bytes:
    """The private key in unencrypted PKCS#8 PEM (the file holding it is mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- internals ------------------------------------------------------------------------------


def _ca_name(trust_domain: str, common_name: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshpy")]
    if len(trust_domain) <= 64:  # the X.520 upper bound of an organizational unit
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, trust_domain))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _signing_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _trust_domain_san(trust_domain: str) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")])


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = issuer.public_key()
        if not isinstance(public_key, _PUBLIC_KEY_TYPES):
            msg = f"unsupported issuer key type {type(public_key).__name__}"
            raise CertificateError(msg) from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The digest to sign with: none for Ed25519, else one as strong as the key."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
