"""meshpy.checks: what ``meshpy check`` decides, as tables of facts (no server, no clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from meshpy.checks import (
    CACertificate,
    CertificateAuthority,
    Check,
    ClockReading,
    Facts,
    ServerStatus,
    Sidecar,
    Unavailable,
    failed,
    run_checks,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
URL = "http://127.0.0.1:15010"
CART = "11111111-1111-1111-1111-111111111111"
PAYMENT = "22222222-2222-2222-2222-222222222222"

STATUS = ServerStatus(
    version="0.9.0",
    dialect="sqlite",
    schema_revision="0005_head",
    schema_head="0005_head",
    schema_known=True,
)
ROOT = CACertificate("root", 1, NOW - 10 * DAY, NOW + 3650 * DAY, "active")
INTERMEDIATE = CACertificate("intermediate", 1, NOW - 10 * DAY, NOW + 355 * DAY)
CA = CertificateAuthority(
    trust_domain="meshpy.local",
    cert_ttl=DAY,
    roots=(ROOT,),
    intermediate=INTERMEDIATE,
    root_key_held=True,
)


def sidecar(instance: str = CART, service: str = "cart", **changes: object) -> Sidecar:
    healthy = Sidecar(
        namespace="default",
        service=service,
        instance=instance,
        state="healthy",
        lease_expires_at=NOW + timedelta(seconds=10),
        sync="SYNCED",
        acked_version=7,
        current_version=7,
        certificate_not_after=NOW + timedelta(hours=20),
    )
    return replace(healthy, **changes)  # type: ignore[arg-type]


CLOCK = ClockReading(  # the server's clock is 0.1 s ahead of the local one
    sent_at=NOW - timedelta(milliseconds=120),
    received_at=NOW - timedelta(milliseconds=80),
    server_time=NOW,
)
HEALTHY = Facts(
    server=URL,
    local_time=NOW,
    ready_revision=12,
    status=STATUS,
    clock=CLOCK,
    ca=CA,
    sidecars=(sidecar(), sidecar(PAYMENT, "payment")),
)
NAMES = [
    ("control plane", "reachable"),
    ("control plane", "ready"),
    ("control plane", "admin token accepted"),
    ("database", "schema migrated"),
    ("certificate authority", "CA valid"),
    ("sidecars", "connected"),
    ("sidecars", "on the latest config"),
    ("certificates", "not near expiry"),
    ("clocks", "in sync"),
]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_healthy_mesh_passes_every_check() -> None:
    checks = run_checks(HEALTHY)
    assert [(c.area, c.name) for c in checks] == NAMES
    assert [c.mark for c in checks] == ["ok"] * len(NAMES), checks
    assert not failed(checks)
    assert all(c.fix is None and c.details == () for c in checks)
    found = by_name(checks)
    assert found["reachable"].message == f"meshpy 0.9.0 answers at {URL}"
    assert found["ready"].message == "its database answers (registry revision 12)"
    assert found["schema migrated"].message == (
        "sqlite schema at 0005_head, the newest this server knows"
    )
    assert found["CA valid"].message == (
        "trust domain meshpy.local: the intermediate (generation 1) is valid until "
        "2027-02-19 12:00 UTC (355d)"
    )
    assert found["connected"].message == "2 sidecars connected"
    assert found["on the latest config"].message == "2 sidecars on the latest config"
    assert found["not near expiry"].message == (
        "the soonest sidecar certificate expires in 20h (renewed at about a third left)"
    )
    assert found["in sync"].message == "the local clock is within 0.1s of the control plane's"


def test_an_unreachable_control_plane_is_the_one_check() -> None:
    facts = Facts(URL, NOW, health=Unavailable("[Errno 111] Connection refused"))
    [only] = run_checks(facts)
    assert (only.name, only.mark) == ("reachable", "fail")
    assert only.message == f"no answer from {URL}: [Errno 111] Connection refused"
    assert only.fix == "start it (`meshpy server`), or point --server or MESHPY_SERVER at it"
    assert failed([only])


def test_a_refused_token_stops_after_the_control_plane_checks() -> None:
    facts = Facts(URL, NOW, ready_revision=3, admin=Unavailable("the token is not valid"))
    checks = run_checks(facts)
    assert [(c.name, c.mark) for c in checks] == [
        ("reachable", "ok"),
        ("ready", "ok"),
        ("admin token accepted", "fail"),
    ]
    assert checks[0].message == f"the control plane answers at {URL}"
    assert checks[2].message == "the token is not valid"
    assert checks[2].fix is not None
    assert "--token" in checks[2].fix


def test_a_database_down_fails_what_needs_it_and_keeps_the_rest() -> None:
    down = Unavailable("HTTP 503: the database is unavailable")
    facts = replace(
        HEALTHY, ready_revision=down, status=down, clock=down, sidecars=down, local_time=NOW
    )
    marks = {c.name: c.mark for c in run_checks(facts)}
    assert marks == {
        "reachable": "ok",
        "ready": "fail",
        "admin token accepted": "ok",
        "schema migrated": "fail",
        "CA valid": "ok",
        "connected": "fail",
        "on the latest config": "fail",
        "not near expiry": "fail",
        "in sync": "warn",
    }
    ready = by_name(run_checks(facts))["ready"]
    assert ready.message == "its database does not answer: HTTP 503: the database is unavailable"


# (case, status, mark, message, fix)
SCHEMA_TABLE: list[tuple[str, ServerStatus, str, str, str | None]] = [
    (
        "newest",
        STATUS,
        "ok",
        "sqlite schema at 0005_head, the newest this server knows",
        None,
    ),
    (
        "migrated by a newer meshpy",
        replace(STATUS, schema_revision="0009_future", schema_known=False),
        "fail",
        "the schema 0009_future is newer than meshpy 0.9.0 on this server knows (its newest "
        "is 0005_head)",
        "upgrade meshpy on this server to the version that migrated the database",
    ),
    (
        "behind",
        replace(STATUS, schema_revision="0003_older"),
        "fail",
        "the schema is at 0003_older; this server needs 0005_head",
        "run `meshpy db upgrade --db URL` with this server's meshpy",
    ),
    (
        "empty",
        replace(STATUS, schema_revision=None),
        "fail",
        "the schema is at nothing (empty database); this server needs 0005_head",
        "run `meshpy db upgrade --db URL` with this server's meshpy",
    ),
]


@pytest.mark.parametrize(
    ("status", "mark", "message", "fix"),
    [case[1:] for case in SCHEMA_TABLE],
    ids=[case[0] for case in SCHEMA_TABLE],
)
def test_schema(status: ServerStatus, mark: str, message: str, fix: str | None) -> None:
    found = by_name(run_checks(replace(HEALTHY, status=status)))["schema migrated"]
    assert (found.mark, found.message, found.fix) == (mark, message, fix)


NEW_CA = "make a new CA: `meshpy identity ca init --force`"
ROTATE = "start a root rotation: `meshpy identity ca rotate`"

# (case, CA, mark, message starts with, fix starts with)
CA_TABLE: list[tuple[str, CertificateAuthority, str, str, str | None]] = [
    ("a year left", CA, "ok", "trust domain meshpy.local: the intermediate", None),
    (
        "intermediate expired",
        replace(CA, intermediate=replace(INTERMEDIATE, not_after=NOW - timedelta(hours=3))),
        "fail",
        "the intermediate (generation 1) expired 3h ago (2026-03-01 09:00 UTC): no certificate "
        "can be issued",
        NEW_CA,
    ),
    (
        "intermediate not valid yet",
        replace(CA, intermediate=replace(INTERMEDIATE, not_before=NOW + timedelta(hours=1))),
        "fail",
        "the intermediate (generation 1) is not valid before 2026-03-01 13:00 UTC",
        "check the control plane's clock",
    ),
    (
        "intermediate ends within a certificate lifetime",
        replace(CA, intermediate=replace(INTERMEDIATE, not_after=NOW + timedelta(hours=2))),
        "fail",
        "the intermediate (generation 1) expires in 2h (2026-03-01 14:00 UTC), sooner than a "
        "certificate lifetime (1d): certificates it signs end with it",
        NEW_CA,
    ),
    (
        "active root ends first",
        replace(CA, roots=(replace(ROOT, not_after=NOW + timedelta(hours=5)),)),
        "fail",
        "the root (generation 1) expires in 5h",
        NEW_CA,
    ),
    (
        "within 30 days, root key held",
        replace(CA, intermediate=replace(INTERMEDIATE, not_after=NOW + 20 * DAY)),
        "warn",
        "the intermediate (generation 1) expires in 20d (2026-03-21 12:00 UTC)",
        ROTATE,
    ),
    (
        "within 30 days, an external root",
        replace(
            CA,
            intermediate=replace(INTERMEDIATE, not_after=NOW + 20 * DAY),
            root_key_held=False,
        ),
        "warn",
        "the intermediate (generation 1) expires in 20d",
        NEW_CA,
    ),
    (
        "within three certificate lifetimes of a week",
        replace(CA, cert_ttl=7 * DAY, intermediate=replace(INTERMEDIATE, not_after=NOW + 20 * DAY)),
        "warn",
        "the intermediate (generation 1) expires in 20d",
        ROTATE,
    ),
    (
        "a rotation switches signing before it ends",
        replace(
            CA,
            intermediate=replace(INTERMEDIATE, not_after=NOW + 20 * DAY),
            signing_switch_at=NOW + 2 * DAY,
        ),
        "ok",
        "trust domain meshpy.local: the intermediate (generation 1) is valid until "
        "2026-03-21 12:00 UTC (20d); a rotation moves signing to a new intermediate at "
        "2026-03-03 12:00 UTC",
        None,
    ),
    (
        "a rotation that switches too late",
        replace(
            CA,
            intermediate=replace(INTERMEDIATE, not_after=NOW + timedelta(hours=6)),
            signing_switch_at=NOW + DAY,
        ),
        "fail",
        "the intermediate (generation 1) expires in 6h",
        NEW_CA,
    ),
    (
        "an expired retiring root is no matter",
        replace(
            CA,
            roots=(ROOT, CACertificate("root", 0, NOW - 9 * DAY, NOW - DAY, "retiring")),
        ),
        "ok",
        "trust domain meshpy.local",
        None,
    ),
    (
        "an expired next root is",
        replace(
            CA,
            roots=(ROOT, CACertificate("root", 2, NOW - 9 * DAY, NOW - DAY, "next")),
        ),
        "fail",
        "the root (generation 2) expired 1d ago",
        NEW_CA,
    ),
]


@pytest.mark.parametrize(
    ("ca", "mark", "message", "fix"),
    [case[1:] for case in CA_TABLE],
    ids=[case[0] for case in CA_TABLE],
)
def test_ca(ca: CertificateAuthority, mark: str, message: str, fix: str | None) -> None:
    found = by_name(run_checks(replace(HEALTHY, ca=ca)))["CA valid"]
    assert found.mark == mark, found
    assert found.message.startswith(message), found.message
    if fix is None:
        assert found.fix is None
    else:
        assert found.fix is not None
        assert found.fix.startswith(fix), found.fix


CART_TITLE = f"default/cart {CART}"

# (case, sidecars, mark, message, details)
CONNECTED_TABLE: list[tuple[str, tuple[Sidecar, ...], str, str, tuple[str, ...]]] = [
    ("none", (), "ok", "no sidecars are registered", ()),
    ("one", (sidecar(),), "ok", "1 sidecar connected", ()),
    (
        "a lease ran out",
        (sidecar(state="unhealthy", lease_expires_at=NOW - timedelta(seconds=42)),),
        "fail",
        "1 of 1 sidecars stopped renewing their lease",
        (f"{CART_TITLE}: its lease ran out 42s ago",),
    ),
    (
        "a lease ran out though the state is still healthy",
        (sidecar(lease_expires_at=NOW - timedelta(seconds=1)), sidecar(PAYMENT, "payment")),
        "fail",
        "1 of 2 sidecars stopped renewing their lease",
        (f"{CART_TITLE}: its lease ran out 1.0s ago",),
    ),
    (
        "gone since it was listed",
        (sidecar(lease_expires_at=None),),
        "fail",
        "1 of 1 sidecars stopped renewing their lease",
        (f"{CART_TITLE}: its lease ran out 0.0s ago",),
    ),
    (
        "an app failing its health check",
        (sidecar(state="unhealthy"),),
        "warn",
        "1 sidecar connected, 1 with an app not healthy",
        (f"{CART_TITLE}: its app fails its health check",),
    ),
    (
        "starting",
        (sidecar(state="starting"),),
        "warn",
        "1 sidecar connected, 1 with an app not healthy",
        (f"{CART_TITLE}: starting: its app has not passed a health check yet",),
    ),
    ("draining is fine", (sidecar(state="draining"),), "ok", "1 sidecar connected", ()),
]


@pytest.mark.parametrize(
    ("sidecars", "mark", "message", "details"),
    [case[1:] for case in CONNECTED_TABLE],
    ids=[case[0] for case in CONNECTED_TABLE],
)
def test_connected(
    sidecars: tuple[Sidecar, ...], mark: str, message: str, details: tuple[str, ...]
) -> None:
    found = by_name(run_checks(replace(HEALTHY, sidecars=sidecars)))["connected"]
    assert (found.mark, found.message, found.details) == (mark, message, details)
    assert (found.fix is None) == (mark == "ok")


STALE = "see the sidecar's log for why it takes no new config"
REJECTED = "the error says what its proxy refused"

# (case, sidecars, mark, message, details, fix starts with)
CONFIG_TABLE: list[tuple[str, tuple[Sidecar, ...], str, str, tuple[str, ...], str | None]] = [
    ("synced", (sidecar(),), "ok", "1 sidecar on the latest config", (), None),
    ("none", (), "ok", "no sidecars are registered", (), None),
    (
        "stuck on an old config",
        (sidecar(sync="STALE", acked_version=5), sidecar(PAYMENT, "payment")),
        "fail",
        "1 of 2 sidecars are not on the latest config",
        (f"{CART_TITLE}: runs config version 5, the current one is 7",),
        STALE,
    ),
    (
        "rejected the current config",
        (sidecar(sync="STALE", error="listener upstream-5433:\n  address in use"),),
        "fail",
        "1 of 1 sidecars are not on the latest config",
        (f"{CART_TITLE}: rejected config version 7: listener upstream-5433: address in use",),
        REJECTED,
    ),
    (
        "never acked, past starting",
        (sidecar(sync="NOT SENT", acked_version=None),),
        "fail",
        "1 of 1 sidecars are not on the latest config",
        (f"{CART_TITLE}: no config applied yet (current version 7)",),
        STALE,
    ),
    (
        "starting without a config yet",
        (sidecar(sync="NOT SENT", acked_version=None, state="starting"),),
        "warn",
        "1 of 1 sidecars are starting and have no config yet",
        (f"{CART_TITLE}: no config applied yet (current version 7)",),
        "run `meshpy check` again in a few seconds",
    ),
]


@pytest.mark.parametrize(
    ("sidecars", "mark", "message", "details", "fix"),
    [case[1:] for case in CONFIG_TABLE],
    ids=[case[0] for case in CONFIG_TABLE],
)
def test_config(
    sidecars: tuple[Sidecar, ...],
    mark: str,
    message: str,
    details: tuple[str, ...],
    fix: str | None,
) -> None:
    found = by_name(run_checks(replace(HEALTHY, sidecars=sidecars)))["on the latest config"]
    assert (found.mark, found.message, found.details) == (mark, message, details)
    assert (found.fix or "")[: len(fix or "")] == (fix or "")
    assert (found.fix is None) == (fix is None)


def expires_in(left: timedelta, **changes: object) -> Sidecar:
    return sidecar(certificate_not_after=NOW + left, **changes)


# (case, sidecars, certificate lifetime, mark, message, details)
CERTIFICATES_TABLE: list[tuple[str, tuple[Sidecar, ...], timedelta, str, str, tuple[str, ...]]] = [
    ("fresh", (expires_in(DAY),), DAY, "ok", "the soonest sidecar certificate expires in 1d", ()),
    (
        "due for renewal, not near expiry",
        (expires_in(timedelta(hours=5)),),
        DAY,
        "ok",
        "the soonest sidecar certificate expires in 5h",
        (),
    ),
    (
        "expires within a day: under a fifth of its lifetime",
        (expires_in(timedelta(hours=4, minutes=30)), sidecar(PAYMENT, "payment")),
        DAY,
        "fail",
        "1 sidecar certificate with less than 4h48m left, a fifth of the 1d lifetime",
        (f"{CART_TITLE}: expires in 4h30m (2026-03-01 16:30 UTC)",),
    ),
    (
        "expired",
        (expires_in(-timedelta(minutes=5)),),
        DAY,
        "fail",
        "1 sidecar certificate with less than 4h48m left, a fifth of the 1d lifetime",
        (f"{CART_TITLE}: expired 5m ago (2026-03-01 11:55 UTC)",),
    ),
    (
        "short lifetimes judged by theirs",
        (expires_in(timedelta(minutes=3)),),
        timedelta(minutes=10),
        "ok",
        "the soonest sidecar certificate expires in 3m",
        (),
    ),
    (
        "short lifetimes near expiry",
        (expires_in(timedelta(minutes=1)),),
        timedelta(minutes=10),
        "fail",
        "1 sidecar certificate with less than 2m left, a fifth of the 10m lifetime",
        (f"{CART_TITLE}: expires in 1m (2026-03-01 12:01 UTC)",),
    ),
    (
        "no certificate recorded for the instance",
        (sidecar(certificate_not_after=None),),
        DAY,
        "warn",
        "1 sidecar without a certificate recorded for its instance",
        (f"{CART_TITLE}: no certificate was issued to this instance",),
    ),
    (
        "none yet while starting",
        (sidecar(certificate_not_after=None, state="starting"),),
        DAY,
        "ok",
        "no sidecar certificates to check",
        (),
    ),
]


@pytest.mark.parametrize(
    ("sidecars", "ttl", "mark", "message", "details"),
    [case[1:] for case in CERTIFICATES_TABLE],
    ids=[case[0] for case in CERTIFICATES_TABLE],
)
def test_certificates(
    sidecars: tuple[Sidecar, ...],
    ttl: timedelta,
    mark: str,
    message: str,
    details: tuple[str, ...],
) -> None:
    facts = replace(HEALTHY, sidecars=sidecars, ca=replace(CA, cert_ttl=ttl))
    found = by_name(run_checks(facts))["not near expiry"]
    assert (found.mark, found.details) == (mark, details)
    assert found.message.startswith(message), found.message
    assert (found.fix is None) == (mark == "ok")


def test_server_times_are_judged_by_the_server_clock() -> None:
    # The local clock is an hour behind: by it, the lease would still run for an hour.
    late = replace(CLOCK, server_time=NOW + timedelta(hours=1))
    facts = replace(
        HEALTHY,
        clock=late,
        sidecars=(sidecar(lease_expires_at=NOW + timedelta(minutes=59)),),
    )
    found = by_name(run_checks(facts))
    assert found["connected"].mark == "fail"
    assert found["in sync"].mark == "warn"


def reading(server_ahead: timedelta, round_trip: timedelta = timedelta(milliseconds=40)) -> Facts:
    sent = NOW - round_trip / 2
    return replace(HEALTHY, clock=ClockReading(sent, sent + round_trip, NOW + server_ahead))


@pytest.mark.parametrize(
    ("facts", "mark", "message"),
    [
        (reading(timedelta(0)), "ok", "the local clock is within 0.0s of the control plane's"),
        (reading(timedelta(seconds=19)), "ok", "the local clock is within 19s of"),
        (reading(timedelta(seconds=45)), "warn", "the local clock is 45s behind the control"),
        (reading(-timedelta(minutes=3)), "warn", "the local clock is 3m ahead of the control"),
        # 25 s off, but a 12 s round trip leaves it within 20 s: not known to be off.
        (
            reading(timedelta(seconds=25), round_trip=timedelta(seconds=12)),
            "ok",
            "the local clock is within 25s",
        ),
        (
            replace(HEALTHY, clock=Unavailable("HTTP 503: the database is unavailable")),
            "warn",
            "cannot read the control plane's clock: HTTP 503",
        ),
    ],
    ids=["same", "within 20s", "behind", "ahead", "within the round trip", "unread"],
)
def test_clocks(facts: Facts, mark: str, message: str) -> None:
    found = by_name(run_checks(facts))["in sync"]
    assert found.mark == mark
    assert found.message.startswith(message), found.message
    if mark == "warn" and "behind" in message:
        assert found.fix is not None
        assert "certificates start 20s before they are issued" in found.fix


def test_warnings_alone_do_not_fail() -> None:
    facts = replace(
        HEALTHY,
        clock=replace(CLOCK, server_time=NOW - timedelta(minutes=5)),
        sidecars=(sidecar(state="starting", sync="NOT SENT", acked_version=None),),
    )
    checks = run_checks(facts)
    assert {c.mark for c in checks} == {"ok", "warn"}
    assert not failed(checks)


def test_as_dict_is_plain_data() -> None:
    check = Check("sidecars", "connected", "fail", "m", ("a", "b"), "f")
    assert check.as_dict() == {
        "area": "sidecars",
        "name": "connected",
        "mark": "fail",
        "message": "m",
        "details": ["a", "b"],
        "fix": "f",
    }
