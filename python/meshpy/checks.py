"""What ``meshpy check`` decides: facts read from a control plane in, named checks out (pure).

Each check has an area, a name, a mark (ok, warn or fail), a one-line message, a line per
thing at fault (``details``) and, unless it is ok, a one-line fix. A failure means the
mesh is broken or about to be, and makes ``meshpy check`` exit 1; a warning does not.
Times on the server (leases, certificates) are judged by the server's clock when it was
read, so a skewed local clock only shows in the clocks check.

The checks, by area (what fails them):

- control plane: reachable (no answer from ``/healthz``), ready (its database does not
  answer), admin token accepted (refused);
- database: schema migrated (not the newest this server knows);
- certificate authority: CA valid (expired, or ends within a certificate lifetime; a
  warning within 30 days);
- sidecars: connected (a lease ran out; a warning: starting, or the app unhealthy), on
  the latest config (STALE, rejected, or never acked);
- certificates: not near expiry (less than a fifth of the certificate lifetime left);
- clocks: in sync (a warning only: the local clock off by more than ``CLOCK_SKEW``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from meshpy.ca.certs import CLOCK_SKEW
from meshpy.durations import approximate_duration

__all__ = [
    "CA_WARNING",
    "NEAR_EXPIRY_SHARE",
    "CACertificate",
    "CertificateAuthority",
    "Check",
    "ClockReading",
    "Facts",
    "Mark",
    "ServerStatus",
    "Sidecar",
    "Unavailable",
    "failed",
    "run_checks",
]

Mark = Literal["ok", "warn", "fail"]

NEAR_EXPIRY_SHARE = 0.2
"""A sidecar certificate with less than this share of the certificate lifetime left is
near expiry: sidecars renew with 28 to 40% left (``sidecar/identity.py``)."""
CA_WARNING = timedelta(days=30)
"""A CA certificate ending sooner than this is a warning: a root rotation takes two
certificate lifetimes to complete."""


@dataclass(frozen=True)
class Check:
    """One named check and what it found."""

    area: str
    name: str
    mark: Mark
    message: str
    details: tuple[str, ...] = ()
    """A line per thing at fault (a sidecar, say)."""
    fix: str | None = None
    """What to do about it, in one line; None when ok."""

    def as_dict(self) -> dict[str, Any]:
        """The check as plain data (``-o json``/``yaml``)."""
        data = asdict(self)
        data["details"] = list(self.details)
        return data


@dataclass(frozen=True)
class Unavailable:
    """A fact the control plane did not give; ``reason`` says why in one line."""

    reason: str


@dataclass(frozen=True)
class ServerStatus:
    """The control plane's own state (``GET /api/v1/status``)."""

    version: str
    dialect: str
    schema_revision: str | None
    schema_head: str
    schema_known: bool


@dataclass(frozen=True)
class CACertificate:
    """A certificate of the CA: a root of the trust bundle, or the signing intermediate."""

    role: Literal["root", "intermediate"]
    generation: int
    not_before: datetime
    not_after: datetime
    state: Literal["active", "next", "retiring", "signing"] = "signing"

    @property
    def title(self) -> str:
        """ "intermediate (generation 2)"."""
        return f"{self.role} (generation {self.generation})"


@dataclass(frozen=True)
class CertificateAuthority:
    """The CA (``GET /api/v1/identity/ca``)."""

    trust_domain: str
    cert_ttl: timedelta
    """The lifetime of the certificates it issues to sidecars."""
    roots: tuple[CACertificate, ...]
    intermediate: CACertificate
    root_key_held: bool
    """Whether meshpy holds the signing root's key, so that it can rotate it."""
    signing_switch_at: datetime | None = None
    """When a root rotation under way moves signing to a new intermediate."""


@dataclass(frozen=True)
class Sidecar:
    """A sidecar's proxy as ``GET /api/v1/proxies`` shows it."""

    namespace: str
    service: str
    instance: str
    state: Literal["starting", "healthy", "unhealthy", "draining"]
    lease_expires_at: datetime | None
    sync: Literal["SYNCED", "STALE", "NOT SENT"]
    acked_version: int | None
    current_version: int
    error: str | None = None
    certificate_not_after: datetime | None = None

    @property
    def title(self) -> str:
        """ "default/cart 5b1e…": the service and the instance id."""
        return f"{self.namespace}/{self.service} {self.instance}"


@dataclass(frozen=True)
class ClockReading:
    """The server's clock read once, with the local clock before and after the request."""

    sent_at: datetime
    received_at: datetime
    server_time: datetime

    @property
    def skew(self) -> timedelta:
        """How far the server's clock is ahead of the local one (negative: behind)."""
        return self.server_time - (self.sent_at + (self.received_at - self.sent_at) / 2)

    @property
    def uncertainty(self) -> timedelta:
        """Half the round trip: the server read its clock somewhere within it."""
        return (self.received_at - self.sent_at) / 2


@dataclass(frozen=True)
class Facts:
    """What ``meshpy check`` read from a control plane. None: not read, as an earlier
    answer (no answer, a refused token) made reading it pointless."""

    server: str
    """The control plane's URL."""
    local_time: datetime
    """The local clock as the facts were read: the judge of times without a server clock."""
    health: Unavailable | None = None
    """Why ``/healthz`` did not answer 200; None when it did."""
    ready_revision: int | Unavailable | None = None
    """The registry revision ``/readyz`` answered with, or why it did not answer 200."""
    admin: Unavailable | None = None
    """Why the admin token was refused; None when it was accepted."""
    status: ServerStatus | Unavailable | None = None
    clock: ClockReading | Unavailable | None = None
    ca: CertificateAuthority | Unavailable | None = None
    sidecars: tuple[Sidecar, ...] | Unavailable | None = None


def failed(checks: Sequence[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(c.mark == "fail" for c in checks)


def run_checks(facts: Facts) -> list[Check]:
    """Every check the facts allow, in order: control plane, database, certificate
    authority, sidecars, certificates, clocks."""
    version = facts.status.version if isinstance(facts.status, ServerStatus) else None
    checks = [_reachable(facts.server, facts.health, version)]
    if facts.health is not None:
        return checks
    checks.append(_ready(facts.ready_revision))
    checks.append(_admin(facts.admin))
    if facts.admin is not None:
        return checks
    now = facts.clock.server_time if isinstance(facts.clock, ClockReading) else facts.local_time
    checks.append(_schema(facts.status))
    checks.append(_ca(facts.ca, now))
    checks.append(_connected(facts.sidecars, now))
    checks.append(_config(facts.sidecars))
    checks.append(_certificates(facts.sidecars, facts.ca, now))
    checks.append(_clocks(facts.clock))
    return checks


# --- control plane ----------------------------------------------------------------------

_CONTROL_PLANE = "control plane"
_SERVER_LOG = "see the `meshpy server` log"


def _reachable(server: str, health: Unavailable | None, version: str | None) -> Check:
    if health is not None:
        return Check(
            _CONTROL_PLANE,
            "reachable",
            "fail",
            f"no answer from {server}: {health.reason}",
            fix="start it (`meshpy server`), or point --server or MESHPY_SERVER at it",
        )
    who = f"meshpy {version}" if version else "the control plane"
    return Check(_CONTROL_PLANE, "reachable", "ok", f"{who} answers at {server}")


def _ready(revision: int | Unavailable | None) -> Check:
    if isinstance(revision, int):
        return Check(
            _CONTROL_PLANE, "ready", "ok", f"its database answers (registry revision {revision})"
        )
    reason = revision.reason if revision is not None else "not asked"
    return Check(
        _CONTROL_PLANE,
        "ready",
        "fail",
        f"its database does not answer: {reason}",
        fix=f"{_SERVER_LOG}; is the database (--db or MESHPY_DB_URL) up and reachable from it?",
    )


def _admin(refused: Unavailable | None) -> Check:
    if refused is None:
        return Check(_CONTROL_PLANE, "admin token accepted", "ok", "the admin token is accepted")
    return Check(
        _CONTROL_PLANE,
        "admin token accepted",
        "fail",
        refused.reason,
        fix="pass --token, set MESHPY_TOKEN, or run where <home>/admin-token is (MESHPY_HOME)",
    )


def _unavailable(area: str, name: str, what: str, fact: Unavailable | None) -> Check:
    reason = fact.reason if fact is not None else "not read"
    return Check(area, name, "fail", f"cannot read {what}: {reason}", fix=_SERVER_LOG)


# --- database ---------------------------------------------------------------------------


def _schema(status: ServerStatus | Unavailable | None) -> Check:
    area, name = "database", "schema migrated"
    if not isinstance(status, ServerStatus):
        return _unavailable(area, name, "the database schema", status)
    current, head = status.schema_revision, status.schema_head
    if current == head:
        return Check(
            area, name, "ok", f"{status.dialect} schema at {head}, the newest this server knows"
        )
    if not status.schema_known:
        return Check(
            area,
            name,
            "fail",
            f"the schema {current} is newer than meshpy {status.version} on this server knows "
            f"(its newest is {head})",
            fix="upgrade meshpy on this server to the version that migrated the database",
        )
    return Check(
        area,
        name,
        "fail",
        f"the schema is at {current or 'nothing (empty database)'}; this server needs {head}",
        fix="run `meshpy db upgrade --db URL` with this server's meshpy",
    )


# --- certificate authority --------------------------------------------------------------

_NEW_CA = (
    "make a new CA: `meshpy identity ca init --force` (with your own files if the CA is "
    "yours), then restart the sidecars to take certificates from it"
)


def _ca(ca: CertificateAuthority | Unavailable | None, now: datetime) -> Check:
    area, name = "certificate authority", "CA valid"
    if not isinstance(ca, CertificateAuthority):
        return _unavailable(area, name, "the CA", ca)
    judged = [ca.intermediate, *(r for r in ca.roots if r.state in ("active", "next"))]
    for cert in judged:
        if now < cert.not_before:
            return Check(
                area,
                name,
                "fail",
                f"the {cert.title} is not valid before {_when(cert.not_before)}",
                fix="check the control plane's clock (NTP) and the CA's files",
            )
        if cert.not_after <= now:
            return Check(
                area,
                name,
                "fail",
                f"the {cert.title} expired {approximate_duration(now - cert.not_after)} ago "
                f"({_when(cert.not_after)}): no certificate can be issued",
                fix=_NEW_CA,
            )
    signing = [ca.intermediate, *(r for r in ca.roots if r.state == "active")]
    first = min(signing, key=lambda c: c.not_after)
    left = first.not_after - now
    ends = f"the {first.title} expires in {approximate_duration(left)} ({_when(first.not_after)})"
    replaced = ca.signing_switch_at is not None and ca.signing_switch_at < first.not_after
    if left < ca.cert_ttl and not replaced:
        return Check(
            area,
            name,
            "fail",
            f"{ends}, sooner than a certificate lifetime ({approximate_duration(ca.cert_ttl)}): "
            "certificates it signs end with it",
            fix=_NEW_CA,
        )
    if left < max(CA_WARNING, 3 * ca.cert_ttl) and not replaced:
        fix = (
            "start a root rotation: `meshpy identity ca rotate` (it completes in two "
            "certificate lifetimes)"
            if ca.root_key_held
            else _NEW_CA
        )
        return Check(area, name, "warn", ends, fix=fix)
    rotating = (
        f"; a rotation moves signing to a new intermediate at {_when(ca.signing_switch_at)}"
        if ca.signing_switch_at is not None
        else ""
    )
    return Check(
        area,
        name,
        "ok",
        f"trust domain {ca.trust_domain}: the {first.title} is valid until "
        f"{_when(first.not_after)} ({approximate_duration(left)}){rotating}",
    )


# --- sidecars ---------------------------------------------------------------------------

_SIDECARS = "sidecars"


def _connected(sidecars: tuple[Sidecar, ...] | Unavailable | None, now: datetime) -> Check:
    name = "connected"
    if not isinstance(sidecars, tuple):
        return _unavailable(_SIDECARS, name, "the sidecars", sidecars)
    if not sidecars:
        return Check(_SIDECARS, name, "ok", "no sidecars are registered")
    lost: list[str] = []
    unwell: list[str] = []
    for s in sidecars:
        if s.lease_expires_at is None or s.lease_expires_at <= now:
            ended = s.lease_expires_at or now
            lost.append(f"{s.title}: its lease ran out {approximate_duration(now - ended)} ago")
        elif s.state == "unhealthy":
            unwell.append(f"{s.title}: its app fails its health check")
        elif s.state == "starting":
            unwell.append(f"{s.title}: starting: its app has not passed a health check yet")
    total = len(sidecars)
    if lost:
        return Check(
            _SIDECARS,
            name,
            "fail",
            f"{len(lost)} of {total} sidecars stopped renewing their lease",
            (*lost, *unwell),
            fix="is the sidecar running and able to reach the control plane? see its log; "
            "it registers again by itself",
        )
    if unwell:
        return Check(
            _SIDECARS,
            name,
            "warn",
            f"{_count(total, 'sidecar')} connected, {len(unwell)} with an app not healthy",
            tuple(unwell),
            fix="see those sidecars' logs: they say what their app's health check gets",
        )
    return Check(_SIDECARS, name, "ok", f"{_count(total, 'sidecar')} connected")


def _config(sidecars: tuple[Sidecar, ...] | Unavailable | None) -> Check:
    name = "on the latest config"
    if not isinstance(sidecars, tuple):
        return _unavailable(_SIDECARS, name, "the sidecars", sidecars)
    rejected: list[str] = []
    behind: list[str] = []
    waiting: list[str] = []
    for s in sidecars:
        if s.sync == "SYNCED":
            continue
        if s.sync == "NOT SENT":
            line = f"{s.title}: no config applied yet (current version {s.current_version})"
            (waiting if s.state == "starting" else behind).append(line)
        elif s.error is not None:
            rejected.append(
                f"{s.title}: rejected config version {s.acked_version}: {_one_line(s.error)}"
            )
        else:
            behind.append(
                f"{s.title}: runs config version {s.acked_version}, the current one is "
                f"{s.current_version}"
            )
    total = len(sidecars)
    if rejected or behind:
        fix = (
            "the error says what its proxy refused: fix that resource (`meshpy analyze`) or the "
            "sidecar's options"
            if rejected
            else "see the sidecar's log for why it takes no new config; restarting it fetches "
            "the current one"
        )
        return Check(
            _SIDECARS,
            name,
            "fail",
            f"{len(rejected) + len(behind)} of {total} sidecars are not on the latest config",
            (*rejected, *behind, *waiting),
            fix=fix,
        )
    if waiting:
        return Check(
            _SIDECARS,
            name,
            "warn",
            f"{len(waiting)} of {total} sidecars are starting and have no config yet",
            tuple(waiting),
            fix="run `meshpy check` again in a few seconds; if they stay so, see their logs",
        )
    if not sidecars:
        return Check(_SIDECARS, name, "ok", "no sidecars are registered")
    return Check(_SIDECARS, name, "ok", f"{_count(total, 'sidecar')} on the latest config")


# --- certificates -----------------------------------------------------------------------


def _certificates(
    sidecars: tuple[Sidecar, ...] | Unavailable | None,
    ca: CertificateAuthority | Unavailable | None,
    now: datetime,
) -> Check:
    area, name = "certificates", "not near expiry"
    if not isinstance(sidecars, tuple):
        return _unavailable(area, name, "the sidecars", sidecars)
    if not isinstance(ca, CertificateAuthority):
        return _unavailable(area, name, "the certificate lifetime from the CA", ca)
    near = ca.cert_ttl * NEAR_EXPIRY_SHARE
    expiring: list[str] = []
    missing: list[str] = []
    soonest: timedelta | None = None
    for s in sidecars:
        if s.certificate_not_after is None:
            if s.state != "starting":
                missing.append(f"{s.title}: no certificate was issued to this instance")
            continue
        left = s.certificate_not_after - now
        soonest = left if soonest is None else min(soonest, left)
        when = _when(s.certificate_not_after)
        if left <= timedelta(0):
            expiring.append(f"{s.title}: expired {approximate_duration(-left)} ago ({when})")
        elif left < near:
            expiring.append(f"{s.title}: expires in {approximate_duration(left)} ({when})")
    if expiring:
        return Check(
            area,
            name,
            "fail",
            f"{_count(len(expiring), 'sidecar certificate')} with less than "
            f"{approximate_duration(near)} left, a fifth of the "
            f"{approximate_duration(ca.cert_ttl)} lifetime",
            (*expiring, *missing),
            fix="see the certificate authority check, then the sidecar's log for 'certificate "
            "renewal failed' (an expired join token? `meshpy token list`)",
        )
    if missing:
        return Check(
            area,
            name,
            "warn",
            f"{_count(len(missing), 'sidecar')} without a certificate recorded for its instance",
            tuple(missing),
            fix="a sidecar that registered again keeps its certificate until it renews; "
            "if it stays so, see its log",
        )
    if soonest is None:
        return Check(area, name, "ok", "no sidecar certificates to check")
    return Check(
        area,
        name,
        "ok",
        f"the soonest sidecar certificate expires in {approximate_duration(soonest)} "
        f"(renewed at about a third left)",
    )


# --- clocks -----------------------------------------------------------------------------


def _clocks(clock: ClockReading | Unavailable | None) -> Check:
    area, name = "clocks", "in sync"
    if not isinstance(clock, ClockReading):
        reason = clock.reason if clock is not None else "not read"
        return Check(
            area,
            name,
            "warn",
            f"cannot read the control plane's clock: {reason}",
            fix=_SERVER_LOG,
        )
    skew = clock.skew
    off = approximate_duration(skew)
    if abs(skew) - clock.uncertainty > CLOCK_SKEW:
        side = "behind" if skew > timedelta(0) else "ahead of"
        return Check(
            area,
            name,
            "warn",
            f"the local clock is {off} {side} the control plane's",
            fix="sync the clocks (NTP: chrony or systemd-timesyncd): certificates start "
            f"{approximate_duration(CLOCK_SKEW)} before they are issued, so a clock further "
            "behind takes new ones for not yet valid",
        )
    return Check(area, name, "ok", f"the local clock is within {off} of the control plane's")


# --- wording ----------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "-"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _one_line(text: str) -> str:
    return " ".join(text.split())
