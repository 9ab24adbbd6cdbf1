"""A real Prometheus finds the sidecars through the control plane's HTTP service discovery
(with the admin token), scrapes them, and its PromQL answers count exactly the requests
that crossed each edge, by status, with the workload's labels on every series; the
sidecars' opt-in Istio metrics count them again, as Kiali and Istio's dashboards ask."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration import prometheusproc
from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.prometheusproc import PrometheusProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP, REPO

CALLS = 20
FAIL_RATE = 0.25  # payment fails every fourth request: 5 of 20
DELAY_S = 0.03
FAILED = int(CALLS * FAIL_RATE)
SETTLE_S = 20.0
DASHBOARD = REPO / "dashboards" / "meshpy-mesh.json"

BY_EDGE = "sum by (source_service, destination_service, http_response_status_code) ({})"
SERVER = "http_server_request_duration_seconds"
CLIENT = "http_client_request_duration_seconds"
Vector = dict[tuple[str, ...], float]


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


@pytest.fixture
def prometheus(tmp_path: Path, server: ServerProcess) -> Iterator[PrometheusProcess]:
    if not prometheusproc.PROMETHEUS.exists():
        pytest.skip(f"{prometheusproc.PROMETHEUS} is missing: `make system-deps` installs it")
    proc = prometheusproc.start(
        tmp_path,
        f"{server.url}/api/v1/prometheus/targets",
        server.home / "admin-token",
    )
    yield proc
    proc.stop()


def _vector(prometheus: PrometheusProcess, expr: str, *labels: str) -> Vector:
    """The query's answer as ``{(label values...): value}``."""
    return {
        tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
        for sample in prometheus.query(expr)
    }


def _until(prometheus: PrometheusProcess, what: Callable[[], Vector], expected: Vector) -> None:
    """Waits (up to SETTLE_S) until ``what()`` answers ``expected``: targets are found
    and scraped every second."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        got = what()
        if got == expected:
            return
        if time.monotonic() > deadline:
            targets = prometheus.api("targets")["activeTargets"]
            pytest.fail(f"{got} != {expected}\ntargets: {targets}\n{prometheus.log()[-3000:]}")
        time.sleep(0.5)


def _edges(prometheus: PrometheusProcess, expr: str) -> Callable[[], Vector]:
    """The (source, destination) pairs ``expr`` answers for (a rate needs two scrapes)."""
    labels = ("source_service", "destination_service")
    return lambda: dict.fromkeys(_vector(prometheus, expr, *labels), 1.0)


def test_prometheus_counts_each_edge_exactly(
    server: ServerProcess, start_sidecar: StartSidecar, prometheus: PrometheusProcess
) -> None:
    app = (*APP, "--fail-rate", str(FAIL_RATE), "--delay", str(DELAY_S))
    # Istio's metrics too: by flag on two sidecars, by environment on the third.
    start_sidecar("payment", "--version", "v2", "--istio-metrics", app=app)
    start_sidecar("cart", "--istio-metrics", app=APP)
    loadgen = start_sidecar("loadgen", "--version", "v1", env={"MESHPY_ISTIO_METRICS": "1"})

    # The three sidecars are discovered, with the workload's labels on their series.
    def up() -> Vector:
        return _vector(prometheus, "up", "namespace", "service", "version", "job")

    _until(
        prometheus,
        up,
        {
            ("default", "payment", "v2", "meshpy"): 1.0,
            ("default", "cart", "", "meshpy"): 1.0,
            ("default", "loadgen", "v1", "meshpy"): 1.0,
        },
    )

    outbound = f"http://{loadgen.addresses['outbound']}"
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=10) as client:
        for _ in range(CALLS):
            answer = client.get(f"{outbound}/call/payment/charge", headers={"host": "cart"})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    # cart answers 502 when payment answered 500 (the app's /call passes failures on so).
    assert statuses == {200: CALLS - FAILED, 502: FAILED}

    def by_edge(family: str) -> Callable[[], Vector]:
        labels = ("source_service", "destination_service", "http_response_status_code")
        return lambda: _vector(prometheus, BY_EDGE.format(f"{family}_count"), *labels)

    # Server side: what cart's and payment's sidecars took in.
    expected = {
        ("loadgen", "cart", "200"): CALLS - FAILED,
        ("loadgen", "cart", "502"): FAILED,
        ("cart", "payment", "200"): CALLS - FAILED,
        ("cart", "payment", "500"): FAILED,
    }
    _until(prometheus, by_edge(SERVER), {key: float(n) for key, n in expected.items()})
    # Client side: what loadgen's and cart's sidecars sent: the same requests.
    _until(prometheus, by_edge(CLIENT), {key: float(n) for key, n in expected.items()})

    # The target labels name the sidecar that reported: the destination on the server side.
    reporters = _vector(
        prometheus,
        f"sum by (namespace, service, version, destination_service) ({SERVER}_count)",
        "namespace",
        "service",
        "version",
        "destination_service",
    )
    assert reporters == {
        ("default", "cart", "", "cart"): CALLS,
        ("default", "payment", "v2", "payment"): CALLS,
    }
    # The edges carry the callers' verified identities over mTLS, and the versions.
    edges = _vector(
        prometheus,
        f"sum by (source_identity, mtls, destination_version) ({SERVER}_count)",
        "source_identity",
        "mtls",
        "destination_version",
    )
    assert edges == {
        ("spiffe://meshpy.local/ns/default/sa/loadgen", "true", "unknown"): CALLS,
        ("spiffe://meshpy.local/ns/default/sa/cart", "true", "v2"): CALLS,
    }

    # The golden metrics as the dashboard asks for them (over the counters' whole life).
    success = _vector(
        prometheus,
        f'sum by (destination_service) ({SERVER}_count{{http_response_status_code!~"5.."}})'
        f" / sum by (destination_service) ({SERVER}_count)",
        "destination_service",
    )
    assert success == {("cart",): 0.75, ("payment",): 0.75}
    # payment's app answers after DELAY_S: no request is faster, and (on a machine that is
    # not overloaded) most fall in the bucket (0.025, 0.05].
    latencies = [
        _vector(
            prometheus,
            f"histogram_quantile({quantile}, sum by (le) "
            f'({SERVER}_bucket{{destination_service="payment"}}))',
        )[()]
        for quantile in (0.5, 0.95, 0.99)
    ]
    assert 0.025 <= latencies[0] <= 0.05, latencies
    assert latencies == sorted(latencies), latencies

    # Every query of the dashboard is PromQL this Prometheus runs (with its variables set
    # as "All" sets them), and the per-edge ones find the edges.
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m")
            expr = expr.replace("$namespace", ".*").replace("$service", ".*")
            prometheus.query(expr)
            if "_count{" in expr and "by (source_namespace, source_service" in expr:
                _until(
                    prometheus,
                    _edges(prometheus, expr),
                    {("loadgen", "cart"): 1.0, ("cart", "payment"): 1.0},
                )

    # Istio's standard metrics: the same requests, reported by both ends, under the
    # labels Kiali's graph groups by.
    istio = _vector(
        prometheus,
        "sum by (reporter, source_workload, destination_service_name, response_code, "
        "connection_security_policy) (istio_requests_total)",
        "reporter",
        "source_workload",
        "destination_service_name",
        "response_code",
        "connection_security_policy",
    )
    ok, failed = float(CALLS - FAILED), float(FAILED)
    assert istio == {
        ("destination", "loadgen", "cart", "200", "mutual_tls"): ok,
        ("destination", "loadgen", "cart", "502", "mutual_tls"): failed,
        ("destination", "cart", "payment", "200", "mutual_tls"): ok,
        ("destination", "cart", "payment", "500", "mutual_tls"): failed,
        ("source", "loadgen", "cart", "200", "unknown"): ok,
        ("source", "loadgen", "cart", "502", "unknown"): failed,
        ("source", "cart", "payment", "200", "unknown"): ok,
        ("source", "cart", "payment", "500", "unknown"): failed,
    }
    # Istio's dashboards: the p50 in milliseconds, in Istio's (25, 50] bucket.
    p50 = _vector(
        prometheus,
        "histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket"
        '{reporter="destination", destination_service="payment.default.svc"}))',
    )[()]
    assert 25 <= p50 <= 50, p50
