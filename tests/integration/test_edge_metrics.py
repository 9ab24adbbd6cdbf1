"""Per-edge metrics through a real control plane and sidecars over mTLS: every request is
counted once on each end of the edge it crossed, with the services, versions and identity
the snapshot and the certificates say, and exactly as many as were sent."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP

IDENTITY = "spiffe://meshpy.local/ns/default/sa/{}"
CALLS = 7
MISSES = 2


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _counts(sidecar: ProxyProcess, family: str) -> dict[tuple[str, ...], float]:
    """``{(source, destination, method, code, mtls, source identity): count}`` of
    ``family``'s ``_count`` series on the sidecar's admin ``/metrics``."""
    text = httpx.get(f"http://{sidecar.addresses['admin']}/metrics", timeout=5).text
    counts: dict[tuple[str, ...], float] = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            if sample.name != f"{family}_count":
                continue
            labels = sample.labels
            key = (
                f"{labels['source_service']}/{labels['source_version']}",
                f"{labels['destination_service']}/{labels['destination_version']}",
                labels["http_request_method"],
                labels["http_response_status_code"],
                labels["mtls"],
                labels["source_identity"],
            )
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def _settled(sidecar: ProxyProcess, family: str, expected: dict[tuple[str, ...], float]) -> None:
    """Waits (up to 10 s) for ``expected`` among the counts: a response's metrics are
    recorded as it is sent, a moment after the client may have read it."""
    deadline = time.monotonic() + 10
    while True:
        counts = _counts(sidecar, family)
        got = {key: counts.get(key) for key in expected}
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{family}: {got} != {expected}; all: {counts}"
        time.sleep(0.2)


def test_each_request_is_counted_on_both_ends_of_each_edge(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    payment = start_sidecar("payment", "--version", "v2", app=APP)
    cart = start_sidecar("cart", app=APP)
    loadgen = start_sidecar("loadgen", "--version", "v1")
    outbound = f"http://{loadgen.addresses['outbound']}"
    for _ in range(CALLS):
        answer = httpx.get(f"{outbound}/call/payment/charge", headers={"host": "cart"})
        assert answer.status_code == 200, answer.text
    for _ in range(MISSES):
        answer = httpx.get(f"{outbound}/", headers={"host": "nowhere"})
        assert answer.status_code == 404, answer.text

    mesh_id = IDENTITY.format
    _settled(
        loadgen,
        "http_client_request_duration_seconds",
        {
            ("loadgen/v1", "cart/unknown", "GET", "200", "true", ""): CALLS,
            # No route: no cluster, so no service at the other end.
            ("loadgen/v1", "unknown/unknown", "GET", "404", "false", ""): MISSES,
        },
    )
    _settled(
        cart,
        "http_server_request_duration_seconds",
        {("loadgen/unknown", "cart/unknown", "GET", "200", "true", mesh_id("loadgen")): CALLS},
    )
    _settled(
        cart,
        "http_client_request_duration_seconds",
        {("cart/unknown", "payment/unknown", "GET", "200", "true", ""): CALLS},
    )
    _settled(
        payment,
        "http_server_request_duration_seconds",
        {("cart/unknown", "payment/v2", "GET", "200", "true", mesh_id("cart")): CALLS},
    )
    assert not re.search(
        r"http_server_request_duration_seconds_count\{[^}]*\}",
        httpx.get(f"http://{loadgen.addresses['admin']}/metrics", timeout=5).text,
    ), "loadgen has no app: nothing comes into it"
