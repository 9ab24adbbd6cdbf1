"""What each sidecar's admin /metrics says about its instance, and rates over a window.

A scrape keeps, for the ``inbound`` listener (requests into the instance), the request
counters by status class, the request duration histogram and the mTLS counters, and for
the ``outbound`` listener (requests the app sent) the counters by status class. Rates come
from the difference of two scrapes: requests per second, the share of answers that were
not 5xx, and the 99th percentile of the duration (interpolated in its bucket, as
Prometheus's ``histogram_quantile`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from meshpy.stats.histogram import histogram_quantile

__all__ = ["Rates", "Scrape", "parse_metrics", "rates", "sum_counts"]

INBOUND = "inbound"
OUTBOUND = "outbound"
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True)
class Scrape:
    """One reading of a sidecar's metrics, at ``at`` (monotonic seconds)."""

    at: float
    inbound: Mapping[str, float] = field(default_factory=dict)
    """Requests into the instance by status class ("2xx", "5xx", ...)."""
    buckets: tuple[tuple[float, float], ...] = ()
    """The inbound duration histogram: (upper bound in seconds, cumulative count)."""
    outbound: Mapping[str, float] = field(default_factory=dict)
    """Requests the app sent through its sidecar, by status class."""
    mtls: float = 0.0
    """Inbound requests that came over mutual TLS."""
    plaintext: float = 0.0
    """Inbound requests that came in plaintext (a permissive listener)."""

    @property
    def requests(self) -> float:
        """Inbound requests, all classes."""
        return sum(self.inbound.values())

    @property
    def sent(self) -> float:
        """Outbound requests, all classes."""
        return sum(self.outbound.values())


def parse_metrics(text: str, at: float) -> Scrape:
    """Read the Prometheus text of a sidecar's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    inbound: dict[str, float] = {}
    outbound: dict[str, float] = {}
    buckets: dict[float, float] = {}
    mtls = plaintext = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            listener = labels.get("listener")
            if sample.name == "meshpy_requests_total":
                target = {INBOUND: inbound, OUTBOUND: outbound}.get(listener or "")
                if target is not None:
                    cls = labels.get("status_class", "")
                    target[cls] = target.get(cls, 0.0) + sample.value
            elif sample.name == "http_server_request_duration_seconds_bucket":
                # One series per edge, method and status: added up by bucket.
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name == "meshpy_tls_requests_total" and listener == INBOUND:
                if labels.get("tls") == "mtls":
                    mtls += sample.value
                elif labels.get("tls") == "plaintext":
                    plaintext += sample.value
    return Scrape(at, inbound, tuple(sorted(buckets.items())), outbound, mtls, plaintext)


@dataclass(frozen=True)
class Rates:
    """Traffic into an instance between two scrapes."""

    rps: float = 0.0
    success: float | None = None
    """Share of answers that were not 5xx; None without requests."""
    p99: float | None = None
    """Seconds; None without requests."""
    sent_rps: float = 0.0
    """Requests per second the app sent through its sidecar."""


def rates(old: Scrape, new: Scrape) -> Rates:
    """Rates between two scrapes of the same sidecar (``old`` first)."""
    elapsed = new.at - old.at
    if elapsed <= 0:
        return Rates()
    requests = max(0.0, new.requests - old.requests)
    errors = max(0.0, new.inbound.get("5xx", 0.0) - old.inbound.get("5xx", 0.0))
    before = dict(old.buckets)
    delta = [(bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in new.buckets]
    return Rates(
        rps=requests / elapsed,
        success=(requests - errors) / requests if requests else None,
        p99=histogram_quantile(0.99, delta) if requests else None,
        sent_rps=max(0.0, new.sent - old.sent) / elapsed,
    )


def sum_counts(counts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Counters by status class, added up."""
    total = dict.fromkeys(_CLASSES, 0.0)
    for item in counts:
        for cls, value in item.items():
            total[cls] = total.get(cls, 0.0) + value
    return total
