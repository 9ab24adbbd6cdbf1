"""Which certificate signing requests the CA signs: exactly the identity the caller may have.

A CSR is signed only when it is a valid PEM PKCS#10 request whose signature verifies, its
key is EC P-256, Ed25519 or RSA of 2048 to 8192 bits, it asks for one subject alternative
name, a URI equal to the SPIFFE ID the caller is allowed, it does not ask to be a CA, and
its subject's common name, if any, is that same ID. Anything else in the request (other
subject attributes, other extensions) is ignored: the CA sets every field of the leaf
itself and copies nothing from the request but its public key.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from meshpy.ca.certs import PublicKey
from meshpy.ca.spiffeid import is_spiffe_id
from meshpy.errors import MeshpyError

__all__ = ["MAX_RSA_BITS", "CSRRefusedError", "checked_public_key"]

MAX_RSA_BITS = 8192


class CSRRefusedError(MeshpyError):
    """The CSR is refused; ``str()`` says why. ``wrong_identity``: it is well formed but asks
    for an identity the caller may not have (a 403 rather than a 400)."""

    def __init__(self, detail: str, *, wrong_identity: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.wrong_identity = wrong_identity


def checked_public_key(pem: str, allowed_id: str) -> PublicKey:
    """The public key of the CSR in ``pem`` if it may be signed for ``allowed_id``."""
    csr = _parse(pem)
    key = _checked_key(csr)
    if not csr.is_signature_valid:
        raise CSRRefusedError("the CSR's signature does not verify with its own public key")
    _check_extensions(csr, allowed_id)
    for attribute in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        if attribute.value != allowed_id:
            raise CSRRefusedError(
                f"the CSR's subject common name {attribute.value!r} must be empty or the "
                f"SPIFFE ID {allowed_id}"
            )
    return key


def _parse(pem: str) -> x509.CertificateSigningRequest:
    try:
        return x509.load_pem_x509_csr(pem.encode("utf-8"))
    except (ValueError, UnicodeError):
        raise CSRRefusedError(
            "csr is not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)"
        ) from None


def _checked_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    try:
        key = csr.public_key()
    except ValueError:
        raise CSRRefusedError("the CSR's public key cannot be read") from None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, rsa.RSAPublicKey) and 2048 <= key.key_size <= MAX_RSA_BITS:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        found = f"an EC key on {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        found = f"an RSA key of {key.key_size} bits"
    else:
        found = f"a {type(key).__name__.removeprefix('_')} key"
    raise CSRRefusedError(
        f"the CSR has {found}; use EC P-256, Ed25519 or RSA of 2048 to {MAX_RSA_BITS} bits"
    )


def _check_extensions(csr: x509.CertificateSigningRequest, allowed_id: str) -> None:
    try:
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise CSRRefusedError(f"the CSR's extensions cannot be read: {exc}") from None
    names: list[x509.GeneralName] = []
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CSRRefusedError("the CSR asks for a CA certificate (basicConstraints CA=true)")
        if isinstance(value, x509.SubjectAlternativeName):
            names = list(value)
    if not names:
        raise CSRRefusedError(
            f"the CSR has no subject alternative name: it must ask for {allowed_id} as its one "
            "URI SAN"
        )
    others = [n for n in names if not isinstance(n, x509.UniformResourceIdentifier)]
    if others:
        kinds = sorted({_kind(n) for n in others})
        raise CSRRefusedError(
            f"the CSR asks for {', '.join(kinds)} subject alternative names; only one URI SAN, "
            f"the SPIFFE ID {allowed_id}, is allowed"
        )
    if len(names) > 1:
        raise CSRRefusedError(
            f"the CSR asks for {len(names)} URI SANs; an X509-SVID has exactly one, "
            f"the SPIFFE ID {allowed_id}"
        )
    uri = str(names[0].value)
    if uri == allowed_id:
        return
    if not is_spiffe_id(uri):
        raise CSRRefusedError(f"the CSR's URI SAN {uri!r} is not a SPIFFE ID")
    raise CSRRefusedError(
        f"the CSR asks for {uri}; this join token allows only {allowed_id}",
        wrong_identity=True,
    )


def _kind(name: x509.GeneralName) -> str:
    return {
        x509.DNSName: "DNS",
        x509.IPAddress: "IP",
        x509.RFC822Name: "email",
        x509.DirectoryName: "directory",
        x509.RegisteredID: "registered ID",
        x509.OtherName: "other",
    }.get(type(name), type(name).__name__)
