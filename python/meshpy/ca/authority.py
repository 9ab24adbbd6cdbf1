"""The certificate authority: make or import it, load it, sign leaves, rotate its root.

``initialise`` makes a CA in a directory before any server runs (``meshpy identity ca
init``): a new root and intermediate, the user's root and key (meshpy makes the
intermediate), or the user's intermediate and key with the root that signed it (a root
whose key meshpy never sees). ``Authority.open`` loads the CA a server uses, making a new
one on the first start. An ``Authority`` re-reads the files when ``ca.json`` changes, so
servers sharing the directory follow a rotation another one started. Times come from the
injected clock, which tests set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from meshpy.ca import certs, storage
from meshpy.ca.certs import CLOCK_SKEW, CertificateError, PrivateKey, PublicKey
from meshpy.ca.rotation import Generation, Phase, RootState, Rotation, RotationError, State, view
from meshpy.ca.rotation import plan as plan_rotation
from meshpy.ca.spiffeid import trust_domain_id
from meshpy.errors import MeshpyError

__all__ = [
    "Authority",
    "CAError",
    "CAStatus",
    "Clock",
    "Issued",
    "Root",
    "initialise",
    "utcnow",
]

log = logging.getLogger("meshpy.ca")

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""

ROOT_CERT, ROOT_KEY = "root.crt", "root.key"
INTERMEDIATE_CERT, INTERMEDIATE_KEY = "intermediate.crt", "intermediate.key"


def utcnow() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


class CAError(MeshpyError):
    """The CA cannot be made, loaded, used or rotated; ``str()`` is one line saying why."""


@dataclass(frozen=True)
class Issued:
    """A leaf certificate just signed."""

    identity: str
    certificate: x509.Certificate
    chain_pem: str
    """The leaf, then the intermediate that signed it."""
    bundle_pem: str
    """Every root trusted now."""
    serial: int
    not_before: datetime
    not_after: datetime
    issued_at: datetime

    @property
    def serial_hex(self) -> str:
        """The serial number as 32 lowercase hex digits."""
        return f"{self.serial:032x}"


@dataclass(frozen=True)
class Root:
    """A root of the trust bundle."""

    generation: int
    certificate: x509.Certificate
    state: RootState
    key_held: bool


@dataclass(frozen=True)
class CAStatus:
    """The CA at one moment: trust bundle, signing intermediate, rotation phase."""

    trust_domain: str
    phase: Phase
    rotation: Rotation | None
    roots: tuple[Root, ...]
    """The trust bundle, the signer's root first."""
    signer_generation: int
    intermediate: x509.Certificate
    """The intermediate that signs leaves now."""

    @property
    def bundle_pem(self) -> str:
        """Every trusted root, PEM, concatenated."""
        return "".join(certs.to_pem(r.certificate) for r in self.roots)


@dataclass(frozen=True)
class _Material:
    """One reading of the CA directory."""

    stamp: tuple[int, int, int] | None
    state: State
    roots: dict[int, x509.Certificate]
    intermediates: dict[int, x509.Certificate]
    keys: dict[int, PrivateKey]


class Authority:
    """A loaded CA; use ``Authority.open``. Safe to use from several threads."""

    def __init__(self, directory: Path, trust_domain: str, *, clock: Clock = utcnow) -> None:
        self.directory = directory
        self.trust_domain = trust_domain
        self._clock = clock
        self._lock = threading.Lock()
        self._material = _load(directory, trust_domain)

    @classmethod
    def open(cls, directory: Path, trust_domain: str, *, clock: Clock = utcnow) -> Authority:
        """Load the CA in ``directory``, making a new one first if there is none."""
        try:
            with storage.locked(directory):
                if storage.read_state(directory) is None:
                    _create(directory, trust_domain, _now(clock), source="generated")
        except storage.StorageError as exc:
            raise CAError(str(exc)) from None
        return cls(directory, trust_domain, clock=clock)

    def now(self) -> datetime:
        """The CA's current time, to the second (X.509 keeps no finer time)."""
        return _now(self._clock)

    def status(self) -> CAStatus:
        """The trust bundle, the signer and the rotation phase now."""
        return _status(self._current(), self.now())

    def issue(self, public_key: PublicKey, spiffe_id: str, ttl: timedelta) -> Issued:
        """Sign a leaf for ``spiffe_id`` valid for ``ttl`` (less if the intermediate ends
        sooner, or if a rotation will drop its root sooner)."""
        material = self._current()
        now = self.now()
        current = view(material.state, now)
        signer = current.signer
        intermediate, root = material.intermediates[signer], material.roots[signer]
        ends = [now + ttl, intermediate.not_valid_after_utc, root.not_valid_after_utc]
        if current.sign_until is not None:
            ends.append(current.sign_until)
        not_after = min(ends)
        if not_after <= now:
            msg = (
                f"the signing intermediate (generation {signer}) expired at "
                f"{intermediate.not_valid_after_utc.isoformat()}: rotate the CA "
                "(meshpy identity ca rotate)"
            )
            raise CAError(msg)
        not_before = max(now - CLOCK_SKEW, intermediate.not_valid_before_utc)
        serial = certs.random_serial()
        leaf = certs.make_leaf(
            public_key,
            spiffe_id,
            intermediate,
            material.keys[signer],
            serial=serial,
            not_before=not_before,
            not_after=not_after,
        )
        return Issued(
            identity=spiffe_id,
            certificate=leaf,
            chain_pem=certs.to_pem(leaf) + certs.to_pem(intermediate),
            bundle_pem="".join(certs.to_pem(material.roots[g]) for g, _ in current.trusted),
            serial=serial,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            issued_at=now,
        )

    def rotate(self, leaf_ttl: timedelta) -> CAStatus:
        """Start a root rotation: a new root and intermediate, trusted now, signing after
        ``leaf_ttl``. Raises RotationError while one is under way or if meshpy does not
        hold the root key of the current generation."""
        try:
            with storage.locked(self.directory):
                state = storage.read_state(self.directory)
                if state is None:
                    msg = f"the CA in {self.directory} has gone"
                    raise CAError(msg)
                now = self.now()
                signer = state.generation(view(state, now).signer)
                if not signer.root_key_held:
                    msg = (
                        "the current root is external (meshpy never had its key): to move to "
                        "a new CA, run `meshpy identity ca init --force` with new files"
                    )
                    raise RotationError(msg)
                new = Generation(
                    id=max(g.id for g in state.generations) + 1, created_at=now, source="generated"
                )
                # Check before writing anything: a refused rotation leaves no files behind.
                planned = plan_rotation(state, new, now=now, leaf_ttl=leaf_ttl, skew=CLOCK_SKEW)
                _write_generated(self.directory, self.trust_domain, new.id, now)
                storage.write_state(self.directory, planned)
                kept = {g.id for g in planned.generations}
                for old in state.generations:
                    if old.id not in kept:
                        storage.remove_generation(self.directory, old.id)
        except storage.StorageError as exc:
            raise CAError(str(exc)) from None
        log.info("CA rotation started: generation %d to %d", signer.id, new.id)
        return self.status()

    def _current(self) -> _Material:
        """The loaded files, re-read first if ``ca.json`` changed since."""
        with self._lock:
            material = self._material
            try:
                if storage.stamp(self.directory) == material.stamp:
                    return material
                self._material = _load(self.directory, self.trust_domain)
            except (CAError, storage.StorageError) as exc:
                # A half-finished change by another process, or a broken edit: keep serving
                # what was loaded; the next call tries again.
                log.warning("keeping the CA loaded before: %s", exc)
            return self._material


def initialise(
    directory: Path,
    trust_domain: str,
    *,
    clock: Clock = utcnow,
    force: bool = False,
    root_cert: Path | None = None,
    root_key: Path | None = None,
    intermediate_cert: Path | None = None,
    intermediate_key: Path | None = None,
) -> CAStatus:
    """Make the CA in ``directory``: new, from the user's root and key, or from the user's
    root and the intermediate (with key) it signed. Refuses to replace a CA unless ``force``.
    """
    given = (root_cert, root_key, intermediate_cert, intermediate_key)
    if not any(given):
        source = "generated"
    elif root_cert and root_key and not (intermediate_cert or intermediate_key):
        source = "root-imported"
    elif root_cert and intermediate_cert and intermediate_key and not root_key:
        source = "intermediate-imported"
    else:
        msg = (
            "give --root-cert with --root-key (meshpy makes the intermediate), or --root-cert "
            "with --intermediate-cert and --intermediate-key (meshpy never sees the root key)"
        )
        raise CAError(msg)
    now = _now(clock)
    try:
        supplied = _read_supplied(given, trust_domain, now)
        with storage.locked(directory):
            existing = storage.read_state(directory)
            if existing is not None and not force:
                ids = ", ".join(str(g.id) for g in existing.generations)
                msg = (
                    f"a CA already exists in {directory} (generation {ids}, trust domain "
                    f"{existing.trust_domain}): pass --force to replace it"
                )
                raise CAError(msg)
            first = 1 if existing is None else max(g.id for g in existing.generations) + 1
            _create(
                directory, trust_domain, now, source=source, generation=first, supplied=supplied
            )
            if existing is not None:
                for old in existing.generations:
                    storage.remove_generation(directory, old.id)
    except (CertificateError, storage.StorageError) as exc:
        raise CAError(str(exc)) from None
    return _status(_load(directory, trust_domain), now)


# --- internals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Supplied:
    root: x509.Certificate
    root_key: PrivateKey | None
    intermediate: x509.Certificate | None
    intermediate_key: PrivateKey | None


def _now(clock: Clock) -> datetime:
    return clock().astimezone(UTC).replace(microsecond=0)


def _read_supplied(
    given: tuple[Path | None, Path | None, Path | None, Path | None],
    trust_domain: str,
    now: datetime,
) -> _Supplied | None:
    """The user's files, checked: key matches certificate, CA=true, chain to the root."""
    root_path, root_key_path, inter_path, inter_key_path = given
    if root_path is None:
        return None
    root = certs.load_certificate(storage.read_bytes(root_path), str(root_path))
    _check_root(root, str(root_path), trust_domain, now)
    root_key = None
    if root_key_path is not None:
        root_key = certs.load_private_key(storage.read_bytes(root_key_path), str(root_key_path))
        certs.check_key_matches(root, root_key, f"{root_key_path} (for {root_path})")
    intermediate = intermediate_key = None
    if inter_path is not None and inter_key_path is not None:
        what = str(inter_path)
        intermediate = certs.load_certificate(storage.read_bytes(inter_path), what)
        certs.check_signing_cert(intermediate, what)
        certs.check_issued_by(intermediate, root, f"{what} (is it signed by {root_path}?)")
        certs.check_valid_at(intermediate, now, what)
        _check_trust_domain(intermediate, what, trust_domain)
        intermediate_key = certs.load_private_key(
            storage.read_bytes(inter_key_path), str(inter_key_path)
        )
        certs.check_key_matches(intermediate, intermediate_key, f"{inter_key_path} (for {what})")
    return _Supplied(root, root_key, intermediate, intermediate_key)


def _check_root(root: x509.Certificate, what: str, trust_domain: str, now: datetime) -> None:
    certs.check_signing_cert(root, what)
    if root.issuer != root.subject:
        msg = f"{what}: not a root certificate (it is issued by {root.issuer.rfc4514_string()!r})"
        raise CertificateError(msg)
    certs.check_issued_by(root, root, f"{what} (self-signature)")
    certs.check_valid_at(root, now, what)
    path_length = root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    if path_length == 0:
        msg = f"{what}: its pathlen is 0, so it cannot sign an intermediate CA"
        raise CertificateError(msg)
    _check_trust_domain(root, what, trust_domain)


def _check_trust_domain(cert: x509.Certificate, what: str, trust_domain: str) -> None:
    """A CA certificate that names a SPIFFE trust domain must name ours."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith("spiffe://") and uri.rstrip("/") != trust_domain_id(trust_domain):
            msg = f"{what}: it is for {uri}, not the trust domain {trust_domain}"
            raise CertificateError(msg)


def _create(
    directory: Path,
    trust_domain: str,
    now: datetime,
    *,
    source: str,
    generation: int = 1,
    supplied: _Supplied | None = None,
) -> None:
    """Write generation ``generation``'s files, then a ``ca.json`` naming it alone."""
    storage.make_private_dir(directory)
    storage.remove_generation(directory, generation)  # leftovers of an interrupted attempt
    if supplied is None:
        _write_generated(directory, trust_domain, generation, now)
    else:
        gen_dir = storage.generation_dir(directory, generation)
        storage.write_private(gen_dir / ROOT_CERT, certs.to_pem(supplied.root).encode())
        if supplied.root_key is not None:
            storage.write_private(gen_dir / ROOT_KEY, certs.key_to_pem(supplied.root_key))
        intermediate, key = supplied.intermediate, supplied.intermediate_key
        if intermediate is None or key is None:
            if supplied.root_key is None:  # pragma: no cover - initialise checks the options
                msg = "neither the root key nor an intermediate was given"
                raise CAError(msg)
            key = certs.new_key()
            intermediate = certs.make_intermediate(
                key, supplied.root, supplied.root_key, trust_domain, generation=generation, now=now
            )
        storage.write_private(gen_dir / INTERMEDIATE_CERT, certs.to_pem(intermediate).encode())
        storage.write_private(gen_dir / INTERMEDIATE_KEY, certs.key_to_pem(key))
    gen = Generation(id=generation, created_at=now, source=source)
    storage.write_state(
        directory, State(trust_domain=trust_domain, generations=(gen,), active=generation)
    )


def _write_generated(directory: Path, trust_domain: str, generation: int, now: datetime) -> None:
    """A new root and intermediate (ECDSA P-256) as generation ``generation``."""
    root_key, inter_key = certs.new_key(), certs.new_key()
    root = certs.make_root(root_key, trust_domain, generation=generation, now=now)
    inter = certs.make_intermediate(
        inter_key, root, root_key, trust_domain, generation=generation, now=now
    )
    gen_dir = storage.generation_dir(directory, generation)
    storage.write_private(gen_dir / ROOT_KEY, certs.key_to_pem(root_key))
    storage.write_private(gen_dir / ROOT_CERT, certs.to_pem(root).encode())
    storage.write_private(gen_dir / INTERMEDIATE_KEY, certs.key_to_pem(inter_key))
    storage.write_private(gen_dir / INTERMEDIATE_CERT, certs.to_pem(inter).encode())


def _load(directory: Path, trust_domain: str) -> _Material:
    """Read and check the CA in ``directory`` (CAError names the file at fault)."""
    try:
        stamp = storage.stamp(directory)
        state = storage.read_state(directory)
        if state is None:
            msg = f"no CA in {directory}: start the server once or run `meshpy identity ca init`"
            raise CAError(msg)
        if state.trust_domain != trust_domain:
            msg = (
                f"the CA in {directory} is for the trust domain {state.trust_domain}, not "
                f"{trust_domain} (MESHPY_TRUST_DOMAIN): set it back, or make a new CA with "
                "`meshpy identity ca init --force`"
            )
            raise CAError(msg)
        roots, intermediates, keys = {}, {}, {}
        for gen in state.generations:
            gen_dir = storage.generation_dir(directory, gen.id)
            root_path, cert_path = gen_dir / ROOT_CERT, gen_dir / INTERMEDIATE_CERT
            key_path = gen_dir / INTERMEDIATE_KEY
            root = certs.load_certificate(storage.read_bytes(root_path), str(root_path))
            inter = certs.load_certificate(storage.read_bytes(cert_path), str(cert_path))
            key = certs.load_private_key(storage.read_bytes(key_path), str(key_path))
            certs.check_signing_cert(inter, str(cert_path))
            certs.check_issued_by(inter, root, str(cert_path))
            certs.check_key_matches(inter, key, str(key_path))
            roots[gen.id], intermediates[gen.id], keys[gen.id] = root, inter, key
    except (CertificateError, storage.StorageError) as exc:
        raise CAError(str(exc)) from None
    return _Material(stamp, state, roots, intermediates, keys)


def _status(material: _Material, now: datetime) -> CAStatus:
    state = material.state
    current = view(state, now)
    roots = tuple(
        Root(g, material.roots[g], root_state, state.generation(g).root_key_held)
        for g, root_state in current.trusted
    )
    return CAStatus(
        trust_domain=state.trust_domain,
        phase=current.phase,
        rotation=state.rotation,
        roots=roots,
        signer_generation=current.signer,
        intermediate=material.intermediates[current.signer],
    )
