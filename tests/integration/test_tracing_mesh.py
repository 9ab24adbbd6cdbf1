"""Distributed tracing through a real control plane and sidecars over mTLS, with apps that
pass the trace headers on: one request becomes one trace, stored by the control plane,
with a client and a server span per hop, their links, identities and statuses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP

TRACE = "5bf92f3577b34da6a3ce929d0e0e4736"
ROOT = "10f067aa0ba902b7"
"""The test's own span: the parent of the first sidecar's."""
IDENTITY = "spiffe://meshpy.local/ns/default/sa/{}"

Span = dict[str, Any]


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    # Traces that start at a sidecar are not sampled: only a caller's decision, or a
    # failure, records one.
    return start_server(env={**FAST_LEASES, "MESHPY_TRACE_SAMPLE_PERCENT": "0"})


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def _trace(server: ServerProcess, trace_id: str, spans: int) -> list[Span]:
    """The stored trace, once it has ``spans`` spans."""

    def probe() -> list[Span] | None:
        answer = server.client().get(f"/api/v1/traces/{trace_id}")
        if answer.status_code != 200:
            return None
        got: list[Span] = answer.json()["spans"]
        return got if len(got) >= spans else None

    return _wait_for(f"{spans} spans of trace {trace_id}", probe)  # type: ignore[no-any-return]


def _call(loadgen: ProxyProcess, path: str, headers: dict[str, str]) -> httpx.Response:
    """A request from loadgen (no app: the test is its app) to cart, through its sidecar."""
    url = f"http://{loadgen.addresses['outbound']}{path}"
    return httpx.get(url, headers={"host": "cart", **headers}, timeout=15)


@pytest.fixture
def mesh(start_sidecar: StartSidecar) -> dict[str, ProxyProcess]:
    return {
        "payment": start_sidecar("payment", app=APP),
        "cart": start_sidecar("cart", app=APP),
        "loadgen": start_sidecar("loadgen"),
    }


def _one(spans: list[Span], service: str, kind: str) -> Span:
    (span,) = [s for s in spans if s["service"] == service and s["kind"] == kind]
    return span


def test_one_request_is_one_trace_with_a_span_per_side_of_each_hop(
    server: ServerProcess, mesh: dict[str, ProxyProcess]
) -> None:
    sent = {"traceparent": f"00-{TRACE}-{ROOT}-01", "x-request-id": "checkout-1"}
    answer = _call(mesh["loadgen"], "/call/payment/charge", sent)
    assert answer.status_code == 200, answer.text
    assert answer.json()["body"]["service"] == "payment"

    spans = _trace(server, TRACE, 4)
    assert len(spans) == 4
    out_of_loadgen = _one(spans, "loadgen", "client")
    into_cart = _one(spans, "cart", "server")
    out_of_cart = _one(spans, "cart", "client")
    into_payment = _one(spans, "payment", "server")
    # Each span is the child of the one before it: the apps passed the headers on.
    assert out_of_loadgen["parent_span_id"] == ROOT
    assert into_cart["parent_span_id"] == out_of_loadgen["span_id"]
    assert out_of_cart["parent_span_id"] == into_cart["span_id"]
    assert into_payment["parent_span_id"] == out_of_cart["span_id"]
    # Who called whom, over mTLS, as each side's certificates say: both sides of each
    # hop name the same two identities.
    hops = [
        (out_of_loadgen, into_cart, "loadgen", "cart"),
        (out_of_cart, into_payment, "cart", "payment"),
    ]
    for client, server_side, caller, callee in hops:
        for span in (client, server_side):
            assert span["attributes"]["meshpy.source.identity"] == IDENTITY.format(caller)
            assert span["attributes"]["meshpy.destination.identity"] == IDENTITY.format(callee)
    for span in spans:
        attrs = span["attributes"]
        assert attrs["meshpy.mtls"] is True, span
        assert attrs["http.response.status_code"] == 200
        assert attrs["meshpy.request_id"] == "checkout-1", "one request id end to end"
        assert span["status_code"] == "unset"
        assert span["resource_attributes"]["service.namespace"] == "default"
    paths = {out_of_cart["attributes"]["url.path"], into_payment["attributes"]["url.path"]}
    assert paths == {"/charge"}
    assert out_of_loadgen["attributes"]["meshpy.destination.service"] == "cart.default"
    assert into_cart["attributes"]["meshpy.destination.service"] == "cart"
    # The outer spans hold the inner ones, in time.
    assert out_of_loadgen["start_time_unix_nano"] <= into_payment["start_time_unix_nano"]
    assert out_of_loadgen["end_time_unix_nano"] >= into_payment["end_time_unix_nano"]

    # The trace is found by any service it crossed.
    shown = server.client().get("/api/v1/traces", params={"service": "payment"}).json()
    assert TRACE in [item["trace_id"] for item in shown["items"]]


def test_an_unsampled_failure_is_recorded_from_the_first_sidecar(
    server: ServerProcess, mesh: dict[str, ProxyProcess]
) -> None:
    # No trace headers and 0% sampling: the first sidecar starts an unsampled trace,
    # which is recorded only where the request fails.
    answer = _call(mesh["loadgen"], "/call/nowhere/x", {})
    assert answer.status_code == 502, answer.text

    def failed() -> list[Any] | None:
        found = server.client().get("/api/v1/traces", params={"status": "error"}).json()
        return found["items"] or None

    (summary,) = _wait_for("the failed trace", failed)
    spans = _trace(server, summary["trace_id"], 3)
    loadgen = _one(spans, "loadgen", "client")
    assert loadgen["parent_span_id"] is None, "the trace started at the first sidecar"
    assert loadgen["attributes"]["http.response.status_code"] == 502
    out_of_cart = _one(spans, "cart", "client")
    assert out_of_cart["attributes"]["meshpy.error"] == "no_route"
    assert out_of_cart["status_code"] == "error"
    # A successful request, also unsampled, leaves nothing.
    assert _call(mesh["loadgen"], "/call/payment/ok", {}).status_code == 200
    time.sleep(2.5)
    items = server.client().get("/api/v1/traces", params={"service": "payment"}).json()["items"]
    assert items == []


def _put(server: ServerProcess, plural: str, api_version: str, kind: str, spec: Any) -> None:
    doc = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "payment"}, "spec": spec}
    answer = server.client().put(f"/api/v1/namespaces/default/{plural}/payment", json=doc)
    assert answer.status_code in (200, 201), answer.text


def test_a_retried_try_is_a_span_of_its_own_with_its_own_server_span(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", app=APP, name="payment-good")
    failing = (*APP, "--fail-rate", "1", "--fail-status", "503")
    start_sidecar("payment", app=failing, name="payment-broken")
    cart = start_sidecar("cart")
    target = {"group": "", "kind": "Service", "name": "payment"}
    rule = {"backendRefs": [{"name": "payment"}], "retry": {"attempts": 1, "codes": [503]}}
    _put(server, "httproutes", "gateway.networking.k8s.io/v1", "HTTPRoute",
         {"parentRefs": [target], "rules": [rule]})  # fmt: skip
    _put(server, "backendpolicies", "policy.meshpy.io/v1alpha1", "BackendPolicy",
         {"targetRefs": [{"kind": "Service", "name": "payment"}],
          "loadBalancer": {"type": "round_robin"}})  # fmt: skip
    revision = server.client().get("/api/v1/revision").json()["revision"]

    def applied() -> bool:
        stats = httpx.get(f"http://{cart.addresses['admin']}/stats", timeout=5).json()
        endpoints = stats["clusters"].get("payment.default", {}).get("endpoints", [])
        return bool(stats["version"] >= revision and len(endpoints) == 2)

    _wait_for("the route and both replicas at cart", applied)
    # Round robin: of two requests, one tries the broken replica first.
    traces = [f"{TRACE[:-1]}{i}" for i in range(2)]
    for trace_id in traces:
        answer = httpx.get(
            f"http://{cart.addresses['outbound']}/pay",
            headers={"host": "payment", "traceparent": f"00-{trace_id}-{ROOT}-01"},
            timeout=15,
        )
        assert answer.status_code == 200, answer.text
    for trace_id in traces:
        _trace(server, trace_id, 2)
    time.sleep(1.5)  # a batch window more: a retried trace has all four spans by then
    counts = {t: len(_trace(server, t, 2)) for t in traces}
    retried = [t for t, count in counts.items() if count == 4]
    assert retried, counts
    spans = _trace(server, retried[0], 4)
    tries = sorted(
        (s for s in spans if s["kind"] == "client"), key=lambda s: s["start_time_unix_nano"]
    )
    assert [s["attributes"].get("meshpy.retry.attempt") for s in tries] == [None, 1]
    assert tries[0]["end_time_unix_nano"] <= tries[1]["start_time_unix_nano"], "one after the other"
    assert [s["attributes"]["http.response.status_code"] for s in tries] == [503, 200]
    assert [s["status_code"] for s in tries] == ["error", "unset"]
    assert {s["parent_span_id"] for s in tries} == {ROOT}, "both tries are the caller's children"
    servers = {s["parent_span_id"]: s for s in spans if s["kind"] == "server"}
    assert servers[tries[0]["span_id"]]["attributes"]["http.response.status_code"] == 503
    assert servers[tries[1]["span_id"]]["attributes"]["http.response.status_code"] == 200
