"""The core's config validation as Python calls it: what it accepts, and which field is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshpy import _core
from meshpy.configfile import split
from meshpy.dataplane import check_bootstrap, check_config, check_snapshot, json_schema
from meshpy.proxyconfig import Cluster, Snapshot

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


def _default(type_name: str, field: str) -> object:
    return json_schema()["$defs"][type_name]["properties"][field]["default"]


def test_the_schema_publishes_the_documented_defaults() -> None:
    assert _default("Bootstrap", "admin") is None
    assert _default("Bootstrap", "workers") == 1
    assert _default("Snapshot", "version") == 0
    assert _default("Listener", "proxy_header") == "via"
    assert _default("Listener", "timeouts") == {
        "request": "15s",
        "idle": "5m",
        "request_head": "10s",
        "body_progress": "30s",
        "send": "30s",
    }
    assert _default("Listener", "limits") == {
        "max_connections": 10_000,
        "max_header_bytes": 65_536,
        "max_headers": 100,
    }
    assert _default("Cluster", "lb") == "round_robin"
    assert _default("Cluster", "protocol") == "http1"
    assert _default("Cluster", "connect_timeout") == "2s"
    assert _default("Cluster", "pool") == {"idle_timeout": "1m", "max_idle_per_endpoint": 64}


def test_a_config_splits_into_bootstrap_and_snapshot() -> None:
    parts = check_config({"admin": "127.0.0.1:9901", "workers": 2, "version": 7, **minimal()})
    assert json.loads(parts.bootstrap_json()) == {"admin": "127.0.0.1:9901", "workers": 2}
    snapshot = json.loads(parts.snapshot_json())
    assert set(snapshot) == {"version", "listeners", "clusters"}
    assert snapshot["version"] == 7
    assert parts.identity is None


def test_an_unset_version_is_0_which_the_core_reads_as_next() -> None:
    proxy = _core.Proxy("{}")
    assert proxy.apply(json.dumps(minimal())) == 1
    assert proxy.apply(json.dumps(minimal())) == 2
    proxy.shutdown(0)


def test_durations_take_the_documented_forms() -> None:
    for text in ("250ms", "15s", "5m", "1h", "1m 30s"):
        data = minimal()
        data["listeners"][0]["timeouts"] = {"request": text, "idle": text}
        check_snapshot(data)


def test_example_file_validates() -> None:
    data = yaml.safe_load((ROOT / "examples" / "proxy-demo.yaml").read_text())
    assert check_config(data).bootstrap["admin"] == "127.0.0.1:19901"


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        (_cluster(lb="random"), "clusters[0].lb"),
        (_cluster(colour="red"), "clusters[0].colour"),
        (_cluster(endpoints=["localhost:80"]), "clusters[0].endpoints[0]"),
        (_cluster(endpoints=["127.0.0.1:0"]), "clusters[0].endpoints[0]"),
        (_cluster(endpoints=["0.0.0.0:80"]), "clusters[0].endpoints[0]"),
        (_cluster(connect_timeout="2"), "clusters[0].connect_timeout"),
        (_cluster(connect_timeout="0s"), "clusters[0].connect_timeout"),
        (_cluster(lb="maglev"), "clusters[0].hash_on"),
        (_cluster(hash_on={"header": "x-user"}), "clusters[0].hash_on"),
        (
            _cluster(lb="ring_hash", hash_on={"source_ip": False}),
            "clusters[0].hash_on.source_ip",
        ),
        (_cluster(local_zone="zone a"), "clusters[0].local_zone"),
        (
            _cluster(endpoints=[{"address": "127.0.0.1:1", "zone": ""}]),
            "clusters[0].endpoints[0].zone",
        ),
        (_cluster(slow_start={"window": "0s"}), "clusters[0].slow_start.window"),
        (_cluster(slow_start={}), "clusters[0].slow_start"),
        (
            _cluster(outlier_detection={"consecutive_5xx": 0}),
            "clusters[0].outlier_detection.consecutive_5xx",
        ),
        (
            _cluster(outlier_detection={"consecutive_5xx": None}),
            "clusters[0].outlier_detection.consecutive_5xx",
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
    with pytest.raises(_core.ConfigError) as info:
        check_config(data)
    assert info.value.path == loc, info.value


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
    with pytest.raises(_core.ConfigError) as info:
        check_snapshot(data)
    assert info.value.path.startswith(f"listeners[0].{field}"), info.value


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
    with pytest.raises(_core.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_snapshot(data)


def test_listeners_on_the_same_fixed_address_are_refused_but_port_0_is_not() -> None:
    data = minimal()
    second = {**data["listeners"][0], "name": "web2"}
    data["listeners"].append(second)
    check_snapshot(data)
    for listener in data["listeners"]:
        listener["address"] = "127.0.0.1:8000"
    with pytest.raises(_core.ConfigError, match=r"listeners\[1\].address"):
        check_snapshot(data)


def test_ipv6_addresses() -> None:
    check_bootstrap({"admin": "[::1]:9901"})
    check_snapshot({"clusters": [{"name": "c", "endpoints": ["[::1]:80"]}]})


def test_endpoints_and_balancing_fields_are_accepted_in_every_form() -> None:
    cluster: Cluster = {
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
    check_snapshot({"clusters": [cluster]})
    for lb in ("round_robin", "least_request", "peak_ewma"):
        check_snapshot({"clusters": [{"name": "c", "lb": lb}]})
    check_snapshot({"clusters": [{"name": "c", "lb": "maglev", "hash_on": {"source_ip": True}}]})


def test_a_balanced_snapshot_is_accepted_by_the_core() -> None:
    snapshot: Snapshot = {
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
    proxy = _core.Proxy("{}")
    assert proxy.apply(json.dumps(snapshot)) == 1
    proxy.shutdown(0)


def test_routes_and_cluster_are_exclusive_and_checked() -> None:
    rule = {"backends": [{"cluster": "b", "weight": 90}, {"cluster": "missing"}]}
    listener = {"name": "out", "address": "127.0.0.1:0", "protocol": "http"}
    routes = [{"name": "h", "hosts": ["h"], "rules": [rule]}]
    data: dict[str, Any] = {
        "listeners": [{**listener, "routes": routes}],
        "clusters": [{"name": "b"}],
    }
    with pytest.raises(_core.ConfigError, match=r"rules\[0\]\.backends\[1\]\.cluster"):
        check_snapshot(data)
    data["listeners"][0]["cluster"] = "b"
    with pytest.raises(_core.ConfigError, match="not both"):
        check_snapshot(data)
    del data["listeners"][0]["routes"]
    check_snapshot(data)


def test_a_routed_snapshot_is_accepted_by_the_core() -> None:
    snapshot: Snapshot = {
        "listeners": [
            {
                "name": "out",
                "address": "127.0.0.1:0",
                "protocol": "http",
                "routes": [
                    {
                        "name": "pay",
                        "hosts": ["payment"],
                        "rules": [
                            {
                                "matches": [
                                    {
                                        "path": {"type": "PathPrefix", "value": "/charge"},
                                        "method": "POST",
                                    }
                                ],
                                "backends": [
                                    {"cluster": "v1", "weight": 90},
                                    {"cluster": "v2", "weight": 10},
                                ],
                                "timeouts": {"request": "2s"},
                            }
                        ],
                    }
                ],
            }
        ],
        "clusters": [
            {"name": "v1", "endpoints": [{"address": "127.0.0.1:9", "weight": 2}]},
            {"name": "v2"},
        ],
    }
    proxy = _core.Proxy("{}")
    assert proxy.apply(json.dumps(snapshot)) == 1
    proxy.shutdown(0)


def test_empty_endpoints_are_allowed() -> None:
    check_snapshot({"clusters": [{"name": "c"}]})


def test_split_keeps_the_bootstrap_keys_of_the_core() -> None:
    parts = split({"admin": None, "workers": 1, "max_connections": 5, "version": 1})
    assert parts.bootstrap == {"admin": None, "workers": 1, "max_connections": 5}
    assert parts.snapshot == {"version": 1}
