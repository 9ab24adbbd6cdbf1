"""Traffic management through the control plane and real sidecars: weighted splits,
retries under a budget, outlier detection, timeouts, consistent hashing, mirroring,
fault injection and circuit breaking, each as a user would configure it."""

from __future__ import annotations

import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import (
    APP,
    Load,
    admin_stats,
    cluster_endpoints,
    wait_applied,
    wait_sidecar_ready,
    wait_until,
)

PAYMENT = {"group": "", "kind": "Service", "name": "payment"}


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _replicas(start: StartSidecar, count: int, *args: str, **kwargs: Any) -> list[ProxyProcess]:
    """``count`` payment replicas started together, each with its app."""
    spawned = [
        start("payment", *args, ready=False, app=APP, name=f"payment-{i}", **kwargs)
        for i in range(count)
    ]
    return [wait_sidecar_ready(s) for s in spawned]


def _apply(server: ServerProcess, plural: str, name: str, spec: dict[str, Any]) -> None:
    kinds = {
        "httproutes": ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        "backendpolicies": ("policy.meshpy.io/v1alpha1", "BackendPolicy"),
    }
    api_version, kind = kinds[plural]
    doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": spec}
    answer = server.client().put(f"/api/v1/namespaces/default/{plural}/{name}", json=doc)
    assert answer.status_code in (200, 201), answer.text


def _served(sidecar: ProxyProcess) -> int:
    """Requests the sidecar's inbound listener answered (its app's share of traffic)."""
    return sum(admin_stats(sidecar)["listeners"]["inbound"]["requests"].values())


def _client(cart: ProxyProcess) -> httpx.Client:
    return httpx.Client(base_url=f"http://{cart.addresses['outbound']}", timeout=10)


def _get(client: httpx.Client, path: str = "/", **headers: str) -> httpx.Response:
    return client.get(path, headers={"host": "payment", **headers})


def test_a_90_10_split_lands_within_one_and_a_half_points_over_10000_requests(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    v1 = start_sidecar("payment", "--version", "v1", app=APP, name="payment-v1")
    v2 = start_sidecar("payment", "--version", "v2", app=APP, name="payment-v2")
    cart = start_sidecar("cart")
    wait_until(
        lambda: cluster_endpoints(cart, "payment-v2.default") == 1, "both versions registered"
    )
    rule = {
        "backendRefs": [{"name": "payment-v1", "weight": 90}, {"name": "payment-v2", "weight": 10}]
    }
    _apply(server, "httproutes", "payment-split", {"parentRefs": [PAYMENT], "rules": [rule]})
    wait_applied(server, cart)

    before = _served(v1), _served(v2)
    # h2load sends exactly 10,000 requests over 8 keep-alive HTTP/1.1 connections; each
    # version's sidecar counts what it received.
    sent = subprocess.run(
        [
            "h2load",
            "--h1",
            "-n",
            "10000",
            "-c",
            "8",
            "-H",
            ":authority: payment",
            f"http://{cart.addresses['outbound']}/",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "10000 succeeded, 0 failed" in sent, sent
    got = _served(v1) - before[0], _served(v2) - before[1]
    assert sum(got) == 10_000, got
    share = 100 * got[1] / 10_000
    assert abs(share - 10) <= 1.5, f"v2 got {share:.2f}% of 10,000 requests"


def test_retries_hide_a_replica_failing_half_its_requests(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", app=APP, name="payment-good")
    flaky = (*APP, "--fail-rate", "0.5", "--fail-status", "503")
    bad = start_sidecar("payment", app=flaky, name="payment-flaky")
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 2, "both replicas")
    rule = {"backendRefs": [{"name": "payment"}], "retry": {"attempts": 2, "codes": [503]}}
    _apply(server, "httproutes", "payment-retry", {"parentRefs": [PAYMENT], "rules": [rule]})
    # Round robin, so that the flaky replica surely gets half of the first tries.
    policy = {
        "targetRefs": [{"kind": "Service", "name": "payment"}],
        "loadBalancer": {"type": "round_robin"},
    }
    _apply(server, "backendpolicies", "payment", policy)
    wait_applied(server, cart)

    with Load(f"http://{cart.addresses['outbound']}/", "payment", rate=40, threads=4) as load:
        time.sleep(10)
    assert load.ok > 250, f"only {load.ok} requests answered"
    assert load.failures == [], load.failures[:5]
    assert _served(bad) > load.ok // 3, "the flaky replica got its share of first tries"


def test_the_retry_budget_caps_retries_when_everything_fails(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    broken = start_sidecar("payment", app=(*APP, "--fail-rate", "1"), name="payment-broken")
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 1, "the replica")
    rule = {"backendRefs": [{"name": "payment"}], "retry": {"attempts": 3, "codes": [500]}}
    _apply(server, "httproutes", "payment-retry", {"parentRefs": [PAYMENT], "rules": [rule]})
    wait_applied(server, cart)

    started = time.monotonic()

    def batch(_: int) -> int:
        with _client(cart) as client:
            return sum(_get(client).status_code == 500 for _ in range(400))

    with ThreadPoolExecutor(6) as pool:
        failed = sum(pool.map(batch, range(6)))
    seconds = time.monotonic() - started
    assert failed == 2400, "every request fails: the only replica always answers 500"
    hits = _served(broken)
    # Without a budget each request would be tried 4 times (9,600 hits); the budget allows
    # 20% more tries than requests, plus 10 retries a second.
    allowed = 2400 * 1.2 + 10 * (seconds + 10)
    assert 2400 < hits <= allowed, f"{hits} tries for 2,400 requests in {seconds:.1f}s"


def test_outlier_detection_ejects_a_failing_replica_and_lets_it_back_once_healed(
    tmp_path: Path, server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    fail_file = tmp_path / "fail-b"
    start_sidecar("payment", app=APP, name="payment-a")
    start_sidecar("payment", name="payment-b", app=(*APP, "--fail-file", str(fail_file)))
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 2, "both replicas")
    policy = {
        "targetRefs": [{"kind": "Service", "name": "payment"}],
        "loadBalancer": {"type": "round_robin"},
        "outlierDetection": {
            "consecutive5xx": 3,
            "interval": "1s",
            "baseEjectionTime": "3s",
            "maxEjectionPercent": 50,
        },
    }
    _apply(server, "backendpolicies", "payment", policy)
    wait_applied(server, cart)

    fail_file.touch()
    with _client(cart) as client:
        statuses = [_get(client).status_code for _ in range(60)]
        failures = [i for i, status in enumerate(statuses) if status != 200]
        assert 1 <= len(failures) <= 3, statuses
        assert max(failures) < 10, f"still reaching the failing replica at request {max(failures)}"
        ejected = [
            e for e in admin_stats(cart)["clusters"]["payment.default"]["endpoints"] if e["ejected"]
        ]
        assert len(ejected) == 1

        fail_file.unlink()
        pids: set[int] = set()

        def both_answer() -> bool:
            answer = _get(client)
            assert answer.status_code == 200, answer.text
            pids.add(answer.json()["pid"])
            return len(pids) == 2

        wait_until(both_answer, "the healed replica to get requests again", timeout=15)


def test_a_200ms_request_timeout_cuts_a_2s_backend(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", app=APP)
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 1, "the replica")
    rule = {"backendRefs": [{"name": "payment"}], "timeouts": {"request": "200ms"}}
    _apply(server, "httproutes", "payment-timeout", {"parentRefs": [PAYMENT], "rules": [rule]})
    wait_applied(server, cart)

    with _client(cart) as client:
        assert _get(client, "/sleep/0.01").status_code == 200
        started = time.monotonic()
        answer = _get(client, "/sleep/2")
        took = time.monotonic() - started
    assert (answer.status_code, answer.headers["x-meshpy-error"]) == (504, "request_timeout")
    assert 0.19 <= took < 1.0, f"answered after {took:.3f}s"


def test_ring_hash_keeps_keys_in_place_when_one_of_ten_endpoints_leaves(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    replicas = _replicas(start_sidecar, 10)
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 10, "ten replicas", timeout=60)
    policy = {
        "targetRefs": [{"kind": "Service", "name": "payment"}],
        "loadBalancer": {"type": "ring_hash", "hashOn": {"header": "x-user"}},
    }
    _apply(server, "backendpolicies", "payment", policy)
    wait_applied(server, cart)
    keys = [f"user-{i}" for i in range(1000)]

    def owners() -> dict[str, int]:
        with _client(cart) as client:
            return {key: _get(client, **{"x-user": key}).json()["pid"] for key in keys}

    before = owners()
    assert before == owners(), "a key always goes to the same endpoint"
    assert len(set(before.values())) == 10, "every endpoint owns some keys"

    replicas[3].stop()
    wait_until(
        lambda: cluster_endpoints(cart, "payment.default") == 9, "the replica gone", timeout=30
    )
    after = owners()
    gone = set(before.values()) - set(after.values())
    assert len(gone) == 1
    # The keys of the endpoint that left must move (a tenth of them, give or take the
    # ring's unevenness); every other key must stay where it was.
    survivors = [k for k in keys if before[k] not in gone]
    moved = [k for k in survivors if after[k] != before[k]]
    assert moved == [], f"{len(moved)} of {len(survivors)} keys of staying endpoints moved"
    kept = 100 * len(survivors) / len(keys)
    assert kept >= 85, f"only {kept:.1f}% of keys kept their endpoint"


def test_mirroring_sends_its_share_and_the_client_never_sees_the_shadow(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", "--version", "v1", app=APP, name="payment-v1")
    slow_and_failing = (*APP, "--fail-rate", "1", "--delay", "1")
    shadow = start_sidecar("payment", "--version", "v2", app=slow_and_failing, name="payment-v2")
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment-v2.default") == 1, "both versions")
    mirror = {"backendRef": {"name": "payment-v2"}, "percent": 50}
    rule = {
        "backendRefs": [{"name": "payment-v1"}],
        "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
    }
    _apply(server, "httproutes", "payment-mirror", {"parentRefs": [PAYMENT], "rules": [rule]})
    wait_applied(server, cart)

    times = []
    with _client(cart) as client:
        for _ in range(200):
            started = time.monotonic()
            answer = _get(client)
            times.append(time.monotonic() - started)
            assert answer.status_code == 200
            assert answer.json()["version"] == "v1"
    assert max(times) < 0.5, f"slowest answer {max(times):.3f}s: the shadow's delay leaked"
    assert statistics.median(times) < 0.05
    wait_until(lambda: _served(shadow) >= 60, "mirrored requests at the shadow", timeout=10)
    time.sleep(1.5)  # the last mirrors finish
    mirrored = _served(shadow)
    assert 70 <= mirrored <= 130, f"{mirrored} of 200 requests mirrored at 50%"


def test_fault_injection_aborts_and_delays_a_share_of_requests(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    app = start_sidecar("payment", app=APP)
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 1, "the replica")
    policy = {
        "targetRefs": [{"kind": "Service", "name": "payment"}],
        "faultInjection": {
            "abort": {"percent": 30, "status": 503},
            "delay": {"percent": 20, "duration": "300ms"},
        },
    }
    _apply(server, "backendpolicies", "payment", policy)
    wait_applied(server, cart)

    aborted = delayed = 0
    with _client(cart) as client:
        for _ in range(300):
            started = time.monotonic()
            answer = _get(client)
            if answer.status_code == 503:
                assert answer.headers["x-meshpy-fault"] == "abort"
                aborted += 1
            else:
                assert answer.status_code == 200
            delayed += time.monotonic() - started >= 0.3
    assert 60 <= aborted <= 120, f"{aborted} of 300 aborted at 30%"
    assert 30 <= delayed <= 90, f"{delayed} of 300 delayed at 20%"
    assert _served(app) == 300 - aborted, "aborted requests never reach the app"


def test_circuit_breaking_fails_fast_over_the_limit(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", app=APP)
    cart = start_sidecar("cart")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 1, "the replica")
    policy = {
        "targetRefs": [{"kind": "Service", "name": "payment"}],
        "connectionLimits": {"maxRequests": 2},
    }
    _apply(server, "backendpolicies", "payment", policy)
    wait_applied(server, cart)

    def slow(_: int) -> tuple[int, str | None, float]:
        started = time.monotonic()
        with _client(cart) as client:
            answer = _get(client, "/sleep/1")
        return (
            answer.status_code,
            answer.headers.get("x-meshpy-overflow"),
            time.monotonic() - started,
        )

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(slow, range(6)))
    served = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(served) == 2, results
    assert len(refused) == 4, results
    assert all(why == "max_requests" and took < 0.5 for _, why, took in refused), refused


def test_callers_prefer_their_zone_and_fail_over_to_another(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    near = start_sidecar("payment", "--zone", "zone-a", app=APP, name="payment-a")
    start_sidecar("payment", "--zone", "zone-b", app=APP, name="payment-b")
    cart = start_sidecar("cart", "--zone", "zone-a")
    wait_until(lambda: cluster_endpoints(cart, "payment.default") == 2, "both replicas")
    with _client(cart) as client:
        zones = {_get(client).json()["pid"] for _ in range(50)}
        near.stop()
        wait_until(lambda: cluster_endpoints(cart, "payment.default") == 1, "the near replica gone")
        answers = [_get(client) for _ in range(20)]
    assert [a.status_code for a in answers] == [200] * 20
    assert {a.json()["pid"] for a in answers}.isdisjoint(zones), "served from the other zone"
