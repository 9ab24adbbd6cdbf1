"""The pydantic models accept what the Rust core accepts and name the bad field otherwise."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from meshpy.dataplane import Bootstrap, Cluster, Listener, ProxyConfig, Snapshot, format_loc

ROOT = Path(__file__).resolve().parents[2]


def minimal() -> dict[str, Any]:
    return {
        "listeners": [
            {"name": "web", "address": "127.0.0.1:0", "protocol": "http", "cluster": "backend"}
        ],
        "clusters": [{"name": "backend", "endpoints": ["127.0.0.1:9000"]}],
    }


def _cluster(**fields: object) -> dict[str, Any]:
    return {"clusters": [{"name": "backend", **fields}]}


def error_locs(exc: ValidationError) -> list[str]:
    return [format_loc(tuple(e["loc"])) for e in exc.errors()]


def test_defaults_match_the_documented_ones() -> None:
    config = ProxyConfig.model_validate(minimal())
    assert config.admin is None
    assert config.workers == 1
    assert config.version == 0
    listener, cluster = config.listeners[0], config.clusters[0]
    assert listener.proxy_header == "via"
    assert listener.timeouts.request == timedelta(seconds=15)
    assert listener.timeouts.idle == timedelta(seconds=300)
    assert listener.limits.model_dump() == {
        "max_connections": 10_000,
        "max_header_bytes": 65_536,
        "max_headers": 100,
    }
    assert cluster.lb == "round_robin"
    assert cluster.protocol == "http1"
    assert cluster.connect_timeout == timedelta(seconds=2)
    assert cluster.pool.idle_timeout == timedelta(seconds=60)
    assert cluster.pool.max_idle_per_endpoint == 64


def test_bootstrap_and_snapshot_json_split_the_file() -> None:
    config = ProxyConfig.model_validate(
        {"admin": "127.0.0.1:9901", "workers": 2, "version": 7, **minimal()}
    )
    assert json.loads(config.bootstrap_json()) == {
        "admin": "127.0.0.1:9901",
        "workers": 2,
        "max_connections": 20_000,
    }
    snapshot = json.loads(config.snapshot_json())
    assert set(snapshot) == {"version", "listeners", "clusters"}
    assert snapshot["version"] == 7
    assert snapshot["listeners"][0]["timeouts"] == {
        "request": "15s",
        "idle": "5m",
        "request_head": "10s",
        "body_progress": "30s",
        "send": "30s",
    }
    assert snapshot["clusters"][0]["connect_timeout"] == "2s"


def test_an_unset_version_is_0_which_the_core_reads_as_next() -> None:
    assert json.loads(ProxyConfig.model_validate(minimal()).snapshot_json())["version"] == 0


def test_durations_round_trip_as_strings() -> None:
    listener = Listener.model_validate(
        {
            "name": "web",
            "address": "127.0.0.1:8000",
            "protocol": "http",
            "cluster": "c",
            "timeouts": {"request": "250ms", "idle": "1h"},
        }
    )
    assert listener.timeouts.request == timedelta(milliseconds=250)
    assert listener.model_dump(mode="json")["timeouts"] == {
        "request": "250ms",
        "idle": "1h",
        "request_head": "10s",
        "body_progress": "30s",
        "send": "30s",
    }


def test_example_file_validates() -> None:
    data = yaml.safe_load((ROOT / "examples" / "proxy-demo.yaml").read_text())
    config = ProxyConfig.model_validate(data)
    assert config.admin == "127.0.0.1:19901"


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        (_cluster(lb="random"), "clusters[0].lb"),
        (_cluster(colour="red"), "clusters[0].colour"),
        (_cluster(endpoints=["localhost:80"]), "clusters[0].endpoints[0].address"),
        (_cluster(endpoints=["127.0.0.1:0"]), "clusters[0].endpoints[0].address"),
        (_cluster(endpoints=["0.0.0.0:80"]), "clusters[0].endpoints[0].address"),
        (_cluster(connect_timeout="2"), "clusters[0].connect_timeout"),
        (_cluster(connect_timeout="0s"), "clusters[0].connect_timeout"),
        (_cluster(lb="maglev"), "clusters[0]"),
        (_cluster(hash_on={"header": "x-user"}), "clusters[0]"),
        (
            _cluster(lb="ring_hash", hash_on={"source_ip": False}),
            "clusters[0].hash_on.HashOnSourceIp.source_ip",
        ),
        (_cluster(local_zone="zone a"), "clusters[0].local_zone"),
        (
            _cluster(endpoints=[{"address": "127.0.0.1:1", "zone": ""}]),
            "clusters[0].endpoints[0].zone",
        ),
        (_cluster(slow_start={"window": "0s"}), "clusters[0].slow_start.window"),
        (_cluster(slow_start={}), "clusters[0].slow_start.window"),
        (
            _cluster(outlier_detection={"consecutive_5xx": 0}),
            "clusters[0].outlier_detection.consecutive_5xx",
        ),
        (
            _cluster(outlier_detection={"consecutive_5xx": None}),
            "clusters[0].outlier_detection",
        ),
        (
            _cluster(outlier_detection={"max_ejection_percent": 101}),
            "clusters[0].outlier_detection.max_ejection_percent",
        ),
        (
            _cluster(circuit_breakers={"max_requests": 0}),
            "clusters[0].circuit_breakers.max_requests",
        ),
        ({"clusters": [{"name": "Backend"}]}, "clusters[0].name"),
        ({"workers": 0}, "workers"),
        ({"workers": 65}, "workers"),
        ({"max_connections": 0}, "max_connections"),
        ({"admin": "127.0.0.1"}, "admin"),
        ({"admin": "::1:80"}, "admin"),
        ({"version": -1}, "version"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_field_is_named(patch: dict[str, Any], loc: str) -> None:
    data = {**minimal(), **patch}
    with pytest.raises(ValidationError) as info:
        ProxyConfig.model_validate(data)
    assert loc in error_locs(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("protocol", "udp"),
        ("proxy_header", "x-via"),
        ("address", "127.0.0.1:70000"),
        ("limits", {"max_header_bytes": 100}),
        ("limits", {"max_headers": 1001}),
        ("limits", {"max_connections": 0}),
        ("timeouts", {"request": "fast"}),
    ],
)
def test_invalid_listener_field_is_named(field: str, value: object) -> None:
    data = minimal()
    data["listeners"][0][field] = value
    with pytest.raises(ValidationError) as info:
        Snapshot.model_validate(data)
    assert any(loc.startswith(f"listeners[0].{field}") for loc in error_locs(info.value))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["listeners"][0].update(cluster="nope"), "listeners[0].cluster: no cluster"),
        (lambda d: d["listeners"][0].update(name="admin"), '"admin" is reserved'),
        (lambda d: d["clusters"].append({"name": "backend"}), "clusters[1].name"),
        (lambda d: d["listeners"].append(dict(d["listeners"][0])), "listeners[1].name"),
    ],
)
def test_cross_references_are_checked(mutate: Any, message: str) -> None:
    data = minimal()
    mutate(data)
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Snapshot.model_validate(data)


def test_listeners_on_the_same_fixed_address_are_refused_but_port_0_is_not() -> None:
    data = minimal()
    second = {**data["listeners"][0], "name": "web2"}
    data["listeners"].append(second)
    Snapshot.model_validate(data)
    for listener in data["listeners"]:
        listener["address"] = "127.0.0.1:8000"
    with pytest.raises(ValidationError, match=r"listeners\[1\].address"):
        Snapshot.model_validate(data)


def test_ipv6_addresses() -> None:
    assert Bootstrap(admin="[::1]:9901").admin == "[::1]:9901"
    cluster = Cluster.model_validate({"name": "c", "endpoints": ["[::1]:80"]})
    assert cluster.endpoints[0].address == "[::1]:80"
    assert cluster.model_dump()["endpoints"] == ["[::1]:80"]


def test_endpoints_take_both_forms_and_dump_compactly() -> None:
    cluster = Cluster.model_validate(
        {"name": "c", "endpoints": ["127.0.0.1:1", {"address": "127.0.0.1:2", "weight": 3}]}
    )
    assert [e.weight for e in cluster.endpoints] == [1, 3]
    assert cluster.model_dump()["endpoints"] == [
        "127.0.0.1:1",
        {"address": "127.0.0.1:2", "weight": 3},
    ]


def test_balancing_fields_dump_as_the_core_reads_them() -> None:
    cluster = Cluster.model_validate(
        {
            "name": "pay",
            "endpoints": [
                "127.0.0.1:1",
                {"address": "127.0.0.1:2", "zone": "zone-a"},
                {"address": "127.0.0.1:3", "weight": 2},
            ],
            "lb": "ring_hash",
            "hash_on": {"cookie": "session"},
            "local_zone": "zone-a",
            "slow_start": {"window": "30s"},
            "outlier_detection": {"consecutive_5xx": None, "consecutive_gateway_errors": 3},
            "circuit_breakers": {"max_requests": 100},
        }
    )
    dumped = json.loads(cluster.model_dump_json())
    assert dumped["endpoints"] == [
        "127.0.0.1:1",
        {"address": "127.0.0.1:2", "weight": 1, "zone": "zone-a"},
        {"address": "127.0.0.1:3", "weight": 2},
    ]
    assert dumped["hash_on"] == {"cookie": "session"}
    assert dumped["slow_start"] == {"window": "30s"}
    assert dumped["outlier_detection"] == {
        "consecutive_5xx": None,
        "consecutive_gateway_errors": 3,
        "interval": "10s",
        "base_ejection_time": "30s",
        "max_ejection_percent": 10,
    }
    assert dumped["circuit_breakers"] == {
        "max_connections": None,
        "max_pending_requests": None,
        "max_requests": 100,
    }
    for lb in ("round_robin", "least_request", "peak_ewma"):
        assert Cluster(name="c", lb=lb).hash_on is None
    assert Cluster.model_validate({"name": "c", "lb": "maglev", "hash_on": {"source_ip": True}})


def test_a_balanced_snapshot_is_accepted_by_the_core() -> None:
    from meshpy import _core

    snapshot = Snapshot.model_validate(
        {
            "clusters": [
                {
                    "name": "pay",
                    "endpoints": [{"address": "127.0.0.1:9", "zone": "zone-a"}, "127.0.0.1:10"],
                    "lb": "maglev",
                    "hash_on": {"header": "x-user"},
                    "local_zone": "zone-a",
                    "slow_start": {"window": "10s"},
                    "outlier_detection": {},
                    "circuit_breakers": {"max_connections": 10},
                }
            ],
        }
    )
    proxy = _core.Proxy("{}")
    assert proxy.apply(snapshot.model_dump_json()) == 1
    proxy.shutdown(0)


def test_routes_and_cluster_are_exclusive_and_checked() -> None:
    rule = {"backends": [{"cluster": "b", "weight": 90}, {"cluster": "missing"}]}
    listener = {"name": "out", "address": "127.0.0.1:0", "protocol": "http"}
    routes = [{"name": "h", "hosts": ["h"], "rules": [rule]}]
    data = {"listeners": [{**listener, "routes": routes}], "clusters": [{"name": "b"}]}
    with pytest.raises(ValidationError, match=r"rules\[0\]\.backends\[1\]\.cluster"):
        Snapshot.model_validate(data)
    data["listeners"][0]["cluster"] = "b"
    with pytest.raises(ValidationError, match="not both"):
        Snapshot.model_validate(data)
    del data["listeners"][0]["routes"]
    assert Snapshot.model_validate(data).listeners[0].cluster == "b"


def test_a_routed_snapshot_is_accepted_by_the_core() -> None:
    from meshpy import _core

    rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/charge"}, "method": "POST"}],
        "backends": [{"cluster": "v1", "weight": 90}, {"cluster": "v2", "weight": 10}],
        "timeouts": {"request": "2s"},
    }
    snapshot = Snapshot.model_validate(
        {
            "listeners": [
                {
                    "name": "out",
                    "address": "127.0.0.1:0",
                    "protocol": "http",
                    "routes": [{"name": "pay", "hosts": ["payment"], "rules": [rule]}],
                }
            ],
            "clusters": [
                {"name": "v1", "endpoints": [{"address": "127.0.0.1:9", "weight": 2}]},
                {"name": "v2"},
            ],
        }
    )
    proxy = _core.Proxy("{}")
    assert proxy.apply(snapshot.model_dump_json()) == 1
    proxy.shutdown(0)


def test_empty_endpoints_are_allowed() -> None:
    assert Cluster(name="c").endpoints == []


def test_format_loc() -> None:
    assert format_loc(("clusters", 0, "lb")) == "clusters[0].lb"
    assert format_loc(("workers",)) == "workers"
    assert format_loc(()) == ""
