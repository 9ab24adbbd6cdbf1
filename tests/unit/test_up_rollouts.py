"""`meshpy up`'s rollouts: a mesh file's rollout on its thread, against a fake control plane.

Promoted, rolled back, not started (no healthy candidate, or stopped before its delay),
interrupted when `meshpy up` stops (rolled back, without waiting out the interval), and
an error reported rather than raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from meshpy.rollout import Plan, Thresholds
from meshpy.up.rollouts import Job

ALL_V1 = {"payment-v1": 1}


class FakeMesh:
    """A control plane: records the routes applied; each reading of v2's stats finds
    ``traffic(weight)`` more (requests, errors) at the weight in force."""

    def __init__(self, traffic: Callable[[int], tuple[int, int]]) -> None:
        self.traffic = traffic
        self.weight = 0
        self.ok = self.errors = 0
        self.applied: list[dict[str, int]] = []
        self.healthy = {"v1": True, "v2": True}
        self.closed = False

    def apply(self, *resources: Any) -> None:
        for res in resources:
            refs = res.to_document()["spec"]["rules"][0]["backendRefs"]
            weights = {ref["name"]: ref.get("weight", 1) for ref in refs}
            self.applied.append(weights)
            self.weight = round(100 * weights.get("payment-v2", 0) / sum(weights.values()))

    def stats(
        self, service: str, *, version: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]:
        assert (service, namespace) == ("payment", "default")
        if version == "v2":
            ok, errors = self.traffic(self.weight)
            self.ok += ok
            self.errors += errors
        total = self.ok + self.errors
        item = {
            "id": f"{version}-1",
            "version": version,
            "state": "healthy" if self.healthy[version or ""] else "unhealthy",
            "started_at": "t0",
            "requests": {"2xx": self.ok, "5xx": self.errors},
            "duration_buckets": {"0.01": total, "+Inf": total},
        }
        return {"reported_every_s": 0.001, "instances": [item]}

    def close(self) -> None:
        self.closed = True


def _plan(interval_s: float = 0.01) -> Plan:
    return Plan(
        service="payment",
        candidate="v2",
        stable="v1",
        steps=[10, 50, 100],
        interval_s=interval_s,
        thresholds=Thresholds(max_error_rate=0.01, max_p99=0.25, min_requests=10),
    )


def _job(
    mesh: FakeMesh, *, after_s: float = 0.0, interval_s: float = 0.01
) -> tuple[Job, threading.Event, list[str]]:
    lines: list[str] = []
    stop = threading.Event()
    return Job(_plan(interval_s), after_s, lambda: mesh, stop, lines.append), stop, lines


def _wait_for(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_healthy_candidate_is_promoted_and_narrated() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    job, _, lines = _job(mesh)
    job.start()
    assert job.join(5)
    assert job.result is not None
    assert job.result.startswith("promoted after 3 step(s) in ")
    assert job.result.endswith(": every request goes to payment-v2")
    assert job.summary().startswith("rollout payment v1 -> v2: promoted after 3 step(s)")
    assert lines[0] == "rollout payment: v1 -> v2 in steps of 10,50,100%, 10ms each"
    assert "rollout payment: step 1/3: 10% of payment to v2, 90% to v1; watching for 10ms" in lines
    assert lines[-1].startswith("rollout payment: promoted: ")
    assert mesh.applied[-1] == {"payment-v2": 1}
    assert mesh.closed
    assert job.status.startswith("promoted after 3 step(s)")


def test_a_failing_candidate_is_rolled_back_at_the_first_step() -> None:
    mesh = FakeMesh(lambda weight: (weight, 1))  # one error in every 11 requests
    job, _, lines = _job(mesh)
    job.run()  # on this thread: the same code
    assert job.result is not None
    assert job.result.startswith("rolled back to v1 at 10% after ")
    assert job.result.endswith(": error rate 9.09% (1 of 11) > 1%")
    assert job.status.startswith("rolled back to v1 at 10%")
    assert mesh.applied == [{"payment-v1": 90, "payment-v2": 10}, ALL_V1]
    assert "rollout payment: 10%: failed: error rate 9.09% (1 of 11) > 1%" in lines
    assert "rollout payment: rolling back: every request of payment to v1" in lines


def test_a_candidate_without_a_healthy_instance_is_reported_not_started() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    mesh.healthy["v2"] = False
    job, _, lines = _job(mesh)
    job.run()
    assert job.summary() == (
        "rollout payment v1 -> v2: not started: payment-v2 has no healthy instance"
    )
    assert lines == [
        "rollout payment: not started: payment-v2 has no healthy instance; nothing was changed"
    ]
    assert mesh.applied == []
    assert mesh.closed


def test_a_stop_before_the_delay_ends_starts_nothing() -> None:
    connected: list[FakeMesh] = []

    def connect() -> FakeMesh:
        connected.append(FakeMesh(lambda _: (0, 0)))
        return connected[-1]

    stop = threading.Event()
    job = Job(_plan(), 60.0, connect, stop, print)
    assert job.status == "starts in 60s"
    job.start()
    stop.set()
    assert job.join(2)
    assert job.result == "not started: meshpy up stopped first"
    assert connected == []


def test_a_stop_half_way_rolls_back_without_waiting_out_the_interval() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    job, stop, lines = _job(mesh, interval_s=600.0)
    job.start()
    _wait_for(lambda: job.status.startswith("step 1/3"))
    started = time.monotonic()
    stop.set()
    assert job.join(5)
    assert time.monotonic() - started < 2
    assert job.result is not None
    assert job.result.startswith("interrupted at 10% after ")
    assert job.result.endswith("(meshpy up stopped): rolled back to v1")
    assert mesh.applied[-1] == ALL_V1
    assert lines[-1] == "rollout payment: rolling back: every request of payment to v1"


@pytest.mark.parametrize("where", ["connect", "apply"])
def test_an_error_is_reported_not_raised(where: str) -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))

    def connect() -> FakeMesh:
        if where == "connect":
            raise OSError("no control plane")
        return mesh

    if where == "apply":

        def broken(*_: Any) -> None:
            raise RuntimeError("refused")

        mesh.apply = broken  # type: ignore[method-assign]
    lines: list[str] = []
    job = Job(_plan(), 0.0, connect, threading.Event(), lines.append)
    job.run()
    reason = "no control plane" if where == "connect" else "refused"
    assert job.summary() == f"rollout payment v1 -> v2: failed: {reason}"
    assert lines[-1] == f"rollout payment: failed: {reason}"


def test_a_job_that_never_ended_says_so() -> None:
    job, _, _ = _job(FakeMesh(lambda _: (0, 0)))
    assert job.summary() == "rollout payment v1 -> v2: still running when meshpy up stopped"
