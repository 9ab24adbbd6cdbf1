"""`meshpy up`'s rates from sidecar metrics: parsing, deltas, p99, and the table's plain form."""

from __future__ import annotations

import io

import pytest

from meshpy.up.display import PlainView, Row, fmt_ms, fmt_pct
from meshpy.up.stats import Rates, Scrape, parse_metrics, rates

METRICS = """\
# HELP meshpy_requests HTTP requests served, by listener and status class.
# TYPE meshpy_requests counter
meshpy_requests_total{{listener="inbound",status_class="2xx"}} {ok}
meshpy_requests_total{{listener="inbound",status_class="5xx"}} {failed}
meshpy_requests_total{{listener="outbound",status_class="2xx"}} {sent}
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_sum{{code="200"}} 1.0
http_server_request_duration_seconds_count{{code="200"}} {ok}
http_server_request_duration_seconds_bucket{{code="200",le="0.001"}} {fast}
http_server_request_duration_seconds_bucket{{code="200",le="0.01"}} {ok}
http_server_request_duration_seconds_bucket{{code="200",le="+Inf"}} {ok}
http_server_request_duration_seconds_sum{{code="503"}} 0.1
http_server_request_duration_seconds_count{{code="503"}} {failed}
http_server_request_duration_seconds_bucket{{code="503",le="0.001"}} 0
http_server_request_duration_seconds_bucket{{code="503",le="0.01"}} {failed}
http_server_request_duration_seconds_bucket{{code="503",le="+Inf"}} {failed}
# TYPE http_client_request_duration_seconds histogram
http_client_request_duration_seconds_bucket{{direction="outbound",le="+Inf"}} 999
# TYPE meshpy_tls_requests counter
meshpy_tls_requests_total{{listener="inbound",tls="mtls"}} {total}
meshpy_tls_requests_total{{listener="inbound",tls="plaintext"}} 0
# EOF
"""


def scrape(at: float, ok: int, failed: int, fast: int, sent: int = 0) -> Scrape:
    total = ok + failed
    text = METRICS.format(ok=ok, failed=failed, total=total, fast=fast, sent=sent)
    return parse_metrics(text, at)


def test_parse_adds_up_the_inbound_edges() -> None:
    s = scrape(0.0, ok=90, failed=10, fast=50, sent=7)
    assert s.requests == 100
    assert s.inbound["5xx"] == 10
    assert s.sent == 7
    assert s.buckets == ((0.001, 50.0), (0.01, 100.0), (float("inf"), 100.0))
    assert (s.mtls, s.plaintext) == (100.0, 0.0)


def test_rates_are_deltas_over_time() -> None:
    old = scrape(10.0, ok=100, failed=0, fast=100, sent=0)
    new = scrape(12.0, ok=138, failed=2, fast=120, sent=20)
    r = rates(old, new)
    assert r.rps == pytest.approx(20.0)
    assert r.success == pytest.approx(0.95)
    assert r.sent_rps == pytest.approx(10.0)
    # 40 new requests: 20 under 1 ms, 20 in (1 ms, 10 ms]: p99 interpolates in the second.
    assert r.p99 == pytest.approx(0.001 + 0.009 * (0.99 * 40 - 20) / 20)


def test_no_requests_means_no_success_rate_or_p99() -> None:
    same = scrape(1.0, ok=5, failed=0, fast=5)
    assert rates(same, scrape(2.0, ok=5, failed=0, fast=5)) == Rates(rps=0.0)


def test_plain_view_prints_aligned_rows() -> None:
    out = io.StringIO()
    row = Row(
        "payment", "v2", "payment-v2-1", "0123456789", "healthy", Rates(2.5, 0.98, 0.004), 0.1
    )
    PlainView(out, every=0).show("title", [row], "payment: v1 90.0% / v2 10.0%")
    lines = out.getvalue().splitlines()
    assert lines[0] == "title"
    assert lines[1].split() == [
        "SERVICE",
        "VERSION",
        "INSTANCE",
        "STATE",
        "RPS",
        "SHARE",
        "SUCCESS",
        "P99",
        "RESTARTS",
    ]
    assert lines[2].split() == [
        "payment",
        "v2",
        "01234567",
        "healthy",
        "2.5",
        "10.0%",
        "98.0%",
        "4.0ms",
        "0",
    ]
    assert lines[3] == "  payment: v1 90.0% / v2 10.0%"


def test_formats() -> None:
    assert (fmt_pct(None), fmt_pct(0.5)) == ("-", "50.0%")
    assert (fmt_ms(None), fmt_ms(0.0042), fmt_ms(0.25)) == ("-", "4.2ms", "250ms")
