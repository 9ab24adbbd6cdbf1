"""What ``meshpy up`` prints once stopped: traffic per service and version, rollouts, mTLS, and
the slowest traces."""

from __future__ import annotations

import time

from meshpy.up.display import fmt_pct
from meshpy.up.state import UpState
from meshpy.up.stats import Scrape
from meshpy.up.traces import trace_lines

__all__ = ["summary"]


def summary(up: UpState) -> list[str]:
    """Requests into every service and version, success rates, and how they travelled."""
    elapsed = time.monotonic() - up.started_at
    lines = [f"meshpy up: summary of {up.title} after {elapsed:.0f}s"]
    groups: dict[tuple[str, str | None], list[Scrape]] = {}
    for inst in up.instances:
        key = (inst.replica.service, inst.replica.version)
        groups.setdefault(key, [])
        if inst.scrapes:
            groups[key].append(inst.scrapes[-1])
    service_total: dict[str, float] = {}
    for (service, _), scrapes in groups.items():
        service_total[service] = service_total.get(service, 0.0) + sum(s.requests for s in scrapes)
    width = max(len(f"{s} {v or ''}".strip()) for s, v in groups) if groups else 0
    order = {name: i for i, name in enumerate(up.mesh.services)}
    for service, version in sorted(groups, key=lambda k: (order[k[0]], k[1] or "")):
        scrapes = groups[(service, version)]
        requests = sum(s.requests for s in scrapes)
        errors = sum(s.inbound.get("5xx", 0.0) for s in scrapes)
        sent = sum(s.sent for s in scrapes)
        sent_errors = sum(s.outbound.get("5xx", 0.0) for s in scrapes)
        name = f"{service} {version or ''}".strip().ljust(width)
        line = f"  {name} {requests:8.0f} requests in"
        if version is not None and service_total[service] > 0:
            line += f", {fmt_pct(requests / service_total[service])} of {service}"
        if requests:
            line += f", {fmt_pct((requests - errors) / requests)} ok"
        if sent:
            line += f"; {sent:.0f} sent, {fmt_pct((sent - sent_errors) / sent)} ok"
        lines.append(line)
    lines += ["  " + job.summary() for job in up.rollouts]
    lines.append("  " + _mtls_line(up))
    lines += ["  " + line for line in trace_lines(up.slowest_traces)]
    return lines


def _mtls_line(up: UpState) -> str:
    last = [i.scrapes[-1] for i in up.instances if i.scrapes]
    total = sum(s.requests for s in last)
    mtls = sum(s.mtls for s in last)
    plaintext = sum(s.plaintext for s in last)
    modes = {i.inbound_tls for i in up.instances if i.admin is not None}
    identities = sorted({str(i.identity["identity"]) for i in up.instances if i.identity})
    if not total:
        verdict = "no requests between services"
    elif not plaintext and mtls >= total and modes <= {"strict"}:
        verdict = "every hop between services was mutual TLS"
    else:
        verdict = "NOT every hop between services was mutual TLS"
    listeners = ", ".join(sorted(str(m or "without tls") for m in modes)) or "-"
    return (
        f"mTLS: {verdict}: {total:.0f} requests into {len(last)} sidecars, "
        f"{plaintext:.0f} in plaintext; inbound listeners {listeners}; "
        f"identities {_compact(identities)}"
    )


def _compact(identities: list[str]) -> str:
    """spiffe://td/ns/default/sa/{a,b} for IDs that differ only in their last part."""
    if not identities:
        return "-"
    prefixes = {i.rpartition("/")[0] for i in identities}
    if len(identities) == 1 or len(prefixes) > 1:
        return ", ".join(identities)
    names = ",".join(i.rpartition("/")[2] for i in identities)
    return f"{prefixes.pop()}/{{{names}}}"
