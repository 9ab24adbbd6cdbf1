"""The CA's files: made on first use with private modes, or brought by the user and checked."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from meshpy.ca.authority import Authority, CAError, initialise
from meshpy.ca.rotation import RotationError
from tests.identity.pki import FakeClock, certificates, check_svid, ec_key, key_pem, make_csr

TD = "meshpy.local"
CART = f"spiffe://{TD}/ns/default/sa/cart"


def _issue_and_check(authority: Authority, tmp_path: Path, clock: FakeClock) -> str:
    """Issue a leaf for cart, check it is a valid SVID; return its chain."""
    from meshpy.ca.csr import checked_public_key

    csr, key = make_csr([CART])
    issued = authority.issue(checked_public_key(csr, CART), CART, timedelta(hours=1))
    check_svid(
        tmp_path,
        issued.chain_pem,
        issued.bundle_pem,
        trust_domain=TD,
        spiffe_id=CART,
        key=key,
        at=clock.now,
    )
    return issued.chain_pem


def test_first_open_makes_a_private_ca(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "ca"
    authority = Authority.open(directory, TD, clock=clock)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*"))
    assert files == [
        ".lock",
        "ca.json",
        "g1",
        "g1/intermediate.crt",
        "g1/intermediate.key",
        "g1/root.crt",
        "g1/root.key",
    ]
    for path in directory.rglob("*"):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path

    ca = authority.status()
    (root,) = ca.roots
    cert = root.certificate
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650, seconds=20)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (bc.critical, bc.value.ca, bc.value.path_length) == (True, True, 1)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert (ku.value.key_cert_sign, ku.value.crl_sign, ku.value.digital_signature) == (
        True,
        True,
        False,
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://{TD}"]
    inter = ca.intermediate
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (bc.critical, bc.value.ca, bc.value.path_length) == (True, True, 0)
    assert inter.not_valid_after_utc - inter.not_valid_before_utc == timedelta(days=365, seconds=20)
    inter.verify_directly_issued_by(cert)
    _issue_and_check(authority, tmp_path, clock)

    # Opening again loads the same CA.
    again = Authority.open(directory, TD, clock=clock)
    assert again.status().roots[0].certificate == cert


def test_leaf_lifetime_is_capped_at_the_intermediates(tmp_path: Path, clock: FakeClock) -> None:
    authority = Authority.open(tmp_path / "ca", TD, clock=clock)
    end = authority.status().intermediate.not_valid_after_utc
    clock.now = end - timedelta(hours=1)
    csr, _ = make_csr([CART])
    from meshpy.ca.csr import checked_public_key

    issued = authority.issue(checked_public_key(csr, CART), CART, timedelta(hours=24))
    assert issued.not_after == end
    clock.now = end + timedelta(seconds=1)
    with pytest.raises(CAError, match=r"expired at .*: rotate the CA"):
        authority.issue(checked_public_key(csr, CART), CART, timedelta(hours=24))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_cert(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    subject: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey] | None,
    *,
    ca: bool = True,
    path_length: int | None = None,
    key_usage: bool = True,
    now: FakeClock,
) -> x509.Certificate:
    issuer_name = _name(subject) if issuer is None else issuer[0].subject
    signer = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.now - timedelta(days=1))
        .not_valid_after(now.now + timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    )
    if key_usage:
        usage = x509.KeyUsage(
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
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(signer, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> Path:
    path.write_bytes(key_pem(key))
    return path


def test_init_with_the_users_root_and_key(tmp_path: Path, clock: FakeClock) -> None:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = _ca_cert(root_key, "Corp Root", None, now=clock)
    root_file, key_file = _write(tmp_path / "root.pem", root), _write_key(tmp_path / "k", root_key)
    directory = tmp_path / "ca"
    ca = initialise(directory, TD, clock=clock, root_cert=root_file, root_key=key_file)
    assert ca.roots[0].certificate == root
    assert ca.roots[0].key_held
    ca.intermediate.verify_directly_issued_by(root)
    assert stat.S_IMODE(os.stat(directory / "g1" / "root.key").st_mode) == 0o600
    chain = _issue_and_check(Authority.open(directory, TD, clock=clock), tmp_path, clock)
    assert certificates(chain)[1].issuer == root.subject

    # A second init refuses to replace it; --force replaces it.
    with pytest.raises(CAError, match=r"a CA already exists in .*: pass --force to replace it"):
        initialise(directory, TD, clock=clock)
    replaced = initialise(directory, TD, clock=clock, force=True)
    assert replaced.roots[0].certificate != root
    assert replaced.roots[0].generation == 2
    assert not (directory / "g1").exists()


def test_init_with_the_users_intermediate(tmp_path: Path, clock: FakeClock) -> None:
    root_key, inter_key = ec_key(), ec_key()
    root = _ca_cert(root_key, "Corp Root", None, now=clock)
    inter = _ca_cert(inter_key, "Corp Mesh CA", (root, root_key), path_length=0, now=clock)
    directory = tmp_path / "ca"
    ca = initialise(
        directory,
        TD,
        clock=clock,
        root_cert=_write(tmp_path / "root.pem", root),
        intermediate_cert=_write(tmp_path / "inter.pem", inter),
        intermediate_key=_write_key(tmp_path / "inter.key", inter_key),
    )
    assert (ca.roots[0].certificate, ca.intermediate) == (root, inter)
    assert not ca.roots[0].key_held
    assert not (directory / "g1" / "root.key").exists()
    authority = Authority.open(directory, TD, clock=clock)
    chain = _issue_and_check(authority, tmp_path, clock)
    assert certificates(chain)[1] == inter
    with pytest.raises(RotationError, match="the current root is external"):
        authority.rotate(timedelta(hours=1))
    assert sorted(p.name for p in directory.iterdir()) == [".lock", "ca.json", "g1"]


def test_init_refuses_bad_files(tmp_path: Path, clock: FakeClock) -> None:
    root_key, other_key, inter_key = ec_key(), ec_key(), ec_key()
    root = _ca_cert(root_key, "Corp Root", None, now=clock)
    other_root = _ca_cert(other_key, "Other Root", None, now=clock)
    inter = _ca_cert(inter_key, "Mesh CA", (root, root_key), now=clock)
    not_ca = _ca_cert(root_key, "Corp Root", None, ca=False, now=clock)
    stuck = _ca_cert(root_key, "Corp Root", None, path_length=0, now=clock)
    no_usage = _ca_cert(root_key, "Corp Root", None, key_usage=False, now=clock)
    files = {
        "root": _write(tmp_path / "root.pem", root),
        "root.key": _write_key(tmp_path / "root.key", root_key),
        "other.key": _write_key(tmp_path / "other.key", other_key),
        "other": _write(tmp_path / "other.pem", other_root),
        "inter": _write(tmp_path / "inter.pem", inter),
        "inter.key": _write_key(tmp_path / "inter.key", inter_key),
        "not-ca": _write(tmp_path / "not-ca.pem", not_ca),
        "stuck": _write(tmp_path / "stuck.pem", stuck),
        "no-usage": _write(tmp_path / "no-usage.pem", no_usage),
        "garbage": tmp_path / "garbage.pem",
    }
    files["garbage"].write_text("hello\n")
    cases: list[tuple[dict[str, str], str]] = [
        (
            {"root_cert": "root", "root_key": "other.key"},
            r"other.key \(for .*root.pem\): the private key does not match the certificate's",
        ),
        ({"root_cert": "not-ca", "root_key": "root.key"}, "not a CA certificate"),
        ({"root_cert": "stuck", "root_key": "root.key"}, "pathlen is 0"),
        ({"root_cert": "no-usage", "root_key": "root.key"}, "no keyUsage; a signing cert"),
        ({"root_cert": "garbage", "root_key": "root.key"}, "garbage.pem: not a PEM certificate"),
        ({"root_cert": "root", "root_key": "garbage"}, "garbage.pem: not a PEM private key"),
        (
            {"root_cert": "other", "intermediate_cert": "inter", "intermediate_key": "inter.key"},
            "its issuer is 'CN=Corp Root', not 'CN=Other Root'",
        ),
        (
            {"root_cert": "root", "intermediate_cert": "inter", "intermediate_key": "root.key"},
            "the private key does not match",
        ),
        ({"root_cert": "root"}, "give --root-cert with --root-key"),
        ({"root_key": "root.key"}, "give --root-cert with --root-key"),
        ({"root_cert": "root", "root_key": "absent"}, "cannot read .*absent: No such file"),
    ]
    files["absent"] = tmp_path / "absent"
    for given, message in cases:
        paths = {option: files[name] for option, name in given.items()}
        with pytest.raises(CAError, match=message):
            initialise(tmp_path / "ca", TD, clock=clock, **paths)  # type: ignore[arg-type]
        assert not (tmp_path / "ca" / "ca.json").exists(), given


def test_a_root_for_another_trust_domain_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    Authority.open(tmp_path / "made", "other.td", clock=clock)
    root = tmp_path / "made" / "g1" / "root.crt"
    key = tmp_path / "made" / "g1" / "root.key"
    with pytest.raises(CAError, match=r"it is for spiffe://other.td, not the trust domain"):
        initialise(tmp_path / "ca", TD, clock=clock, root_cert=root, root_key=key)
    with pytest.raises(CAError, match=r"is for the trust domain other.td, not meshpy.local"):
        Authority.open(tmp_path / "made", TD, clock=clock)


def test_unreadable_files_fail_with_the_files_name(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "ca"
    Authority.open(directory, TD, clock=clock)
    (directory / "g1" / "intermediate.key").write_text("damaged\n")
    with pytest.raises(CAError, match=r"g1/intermediate.key: not a PEM private key"):
        Authority.open(directory, TD, clock=clock)
    (directory / "g1" / "intermediate.key").unlink()
    with pytest.raises(CAError, match=r"cannot read .*g1/intermediate.key: No such file"):
        Authority.open(directory, TD, clock=clock)
    (directory / "ca.json").write_text("{}")
    with pytest.raises(CAError, match=r"ca.json is not a meshpy CA state file"):
        Authority.open(directory, TD, clock=clock)
