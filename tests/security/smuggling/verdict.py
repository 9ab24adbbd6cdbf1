"""The verdict on a case: what the proxy answered, judged with what the backend saw."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from tests.security.smuggling.backend import Seen
from tests.security.smuggling.client import Exchange
from tests.security.smuggling.model import BODYLESS_METHODS, Case, Expect


class Outcome(enum.Enum):
    """What became of a case."""

    ACCEPTED = "accepted"  # 2xx; the backend saw exactly the expected request(s)
    REJECTED = "rejected"  # 4xx and closed; the backend saw nothing of it
    # 4xx and closed after the head had been streamed upstream: the backend saw only the
    # start of the request, cut off, and processed nothing (a streaming proxy finds a
    # broken chunked body only as it forwards it).
    REJECTED_MIDSTREAM = "rejected_midstream"
    BODY_DROPPED = "body_dropped"  # 2xx; a bodyless method's body did not reach the backend
    SMUGGLED = "smuggled"  # a /smuggled target reached the backend
    UNSAFE_FORWARD = "unsafe_forward"  # the backend saw something a proxy must never send
    ACCEPTED_INVALID = "accepted_invalid"  # 2xx for a request that must be rejected
    REJECTED_VALID = "rejected_valid"  # 4xx for a request that must be forwarded
    NOT_CLOSED = "not_closed"  # the connection served more after it had to close
    LEAKED = "leaked"  # rejected, yet (part of) the request reached the backend
    MISFORWARDED = "misforwarded"  # 2xx, but the backend saw other requests or bodies
    NO_ANSWER = "no_answer"  # no final response at all
    UNEXPECTED_STATUS = "unexpected_status"  # neither 2xx nor a rejection status


@dataclass(frozen=True)
class Verdict:
    """The outcome of one case, and what happened, in words."""

    outcome: Outcome
    detail: str = ""


def group_by_case(seen: Sequence[Seen]) -> tuple[dict[str, list[Seen]], list[Seen]]:
    """The backend's requests by the case id in their target; and those with none."""
    by_case: dict[str, list[Seen]] = {}
    unattributed = []
    for request in seen:
        ref = request.ref
        if ref is None:
            unattributed.append(request)
        else:
            by_case.setdefault(ref[1], []).append(request)
    return by_case, unattributed


def _kind(request: Seen) -> str:
    ref = request.ref
    return ref[0] if ref else ""


def _is_rejection(case: Case, status: int) -> bool:
    return 400 <= status < 500 or status in case.reject_statuses


def judge(case: Case, exchange: Exchange, seen: Sequence[Seen]) -> Verdict:
    """The outcome of ``case``, from what the proxy answered and what the backend saw of it."""
    smuggled = [r.target for r in seen if _kind(r) == "smuggled"]
    if smuggled:
        return Verdict(Outcome.SMUGGLED, f"backend saw {smuggled}")
    unsafe = [f"{r.method} {r.target}: {', '.join(r.violations)}" for r in seen if r.violations]
    if unsafe:
        return Verdict(Outcome.UNSAFE_FORWARD, "; ".join(unsafe))
    if not exchange.statuses:
        how = "closed" if exchange.closed else "left open"
        return Verdict(Outcome.NO_ANSWER, f"no response, connection {how}")
    status = exchange.statuses[0]
    if _is_rejection(case, status):
        return _judge_rejection(case, exchange, seen)
    if 200 <= status < 300:
        return _judge_acceptance(case, exchange, seen)
    # The proxy's own words (its error body) tell which of its paths answered.
    said = exchange.received.partition(b"\r\n\r\n")[2][:120]
    parts = [f"{r.method} {r.target} complete={r.complete}" for r in seen]
    detail = f"statuses {exchange.statuses}, body {said!r}; backend saw {parts}"
    return Verdict(Outcome.UNEXPECTED_STATUS, detail)


def _judge_rejection(case: Case, exchange: Exchange, seen: Sequence[Seen]) -> Verdict:
    if case.expect is Expect.ACCEPT:
        return Verdict(Outcome.REJECTED_VALID, f"statuses {exchange.statuses}")
    if len(exchange.statuses) > 1 or not exchange.closed:
        state = "closed" if exchange.closed else "left open"
        return Verdict(Outcome.NOT_CLOSED, f"statuses {exchange.statuses}, connection {state}")
    if any(r.complete for r in seen):
        parts = [f"{r.method} {r.target} complete={r.complete}" for r in seen]
        return Verdict(Outcome.LEAKED, f"status {exchange.statuses[0]}, backend saw {parts}")
    if seen:
        return Verdict(Outcome.REJECTED_MIDSTREAM, f"status {exchange.statuses[0]}")
    return Verdict(Outcome.REJECTED)


def _body_dropped(case: Case, request: Seen) -> bool:
    """A bodyless method's body that the proxy did not forward at all."""
    return (
        case.method in BODYLESS_METHODS
        and request.body == b""
        and request.framing == "none"
        and b"" not in case.bodies
    )


def _forwarding_problems(case: Case, exchange: Exchange, request: Seen, dropped: bool) -> list[str]:
    """How the one forwarded request differs from what the case frames."""
    problems = []
    if f"/case-{case.case_id}" not in request.target:
        problems.append(f"target {request.target!r}")
    if request.method != case.method:
        problems.append(f"method {request.method!r}, expected {case.method!r}")
    if case.host is not None and request.host != case.host:
        problems.append(f"Host {request.host!r}, expected {case.host!r}")
    if request.body not in case.bodies and not dropped:
        problems.append(f"body {request.body!r} ({request.framing}), expected {case.bodies[0]!r}")
    if not exchange.closed:
        # Only a proxy that lost track of where the requests end waits on.
        problems.append(f"connection left open after Connection: close ({exchange.statuses})")
    return problems


def _judge_follow_up(case: Case, exchange: Exchange, follows: Sequence[Seen]) -> Verdict:
    answered = exchange.statuses[1:]
    if case.keep_alive and (len(follows) != 1 or len(answered) != 1 or answered[0] >= 300):
        detail = f"follow-up: statuses {exchange.statuses}, backend saw it {len(follows)} times"
        return Verdict(Outcome.MISFORWARDED, detail)
    if not case.keep_alive and (follows or answered):
        detail = f"statuses {exchange.statuses}; backend saw the follow-up {len(follows)} times"
        return Verdict(Outcome.NOT_CLOSED, detail)
    return Verdict(Outcome.ACCEPTED)


def _judge_acceptance(case: Case, exchange: Exchange, seen: Sequence[Seen]) -> Verdict:
    if case.expect is Expect.REJECT:
        return Verdict(Outcome.ACCEPTED_INVALID, f"statuses {exchange.statuses}")
    forwarded = [r for r in seen if _kind(r) == "case"]
    if len(forwarded) != 1 or not forwarded[0].complete:
        parts = [f"{r.method} {r.target} complete={r.complete}" for r in forwarded]
        return Verdict(Outcome.MISFORWARDED, f"backend saw the case as {parts}")
    request = forwarded[0]
    dropped = request.body not in case.bodies and _body_dropped(case, request)
    problems = _forwarding_problems(case, exchange, request, dropped)
    if problems:
        return Verdict(Outcome.MISFORWARDED, "; ".join(problems))
    if dropped:
        # Whether the connection is kept after a dropped body is part of that defect.
        return Verdict(Outcome.BODY_DROPPED, f"{case.method} forwarded without its body")
    return _judge_follow_up(case, exchange, [r for r in seen if _kind(r) == "follow"])
