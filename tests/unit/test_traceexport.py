"""Where a sidecar sends its spans: the control plane's receiver, the OTEL variables, and
the snapshot they are added to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshpy.sidecar.traceexport import (
    control_plane_export,
    env_exports,
    exports,
    parse_headers,
    with_exports,
)

CP = control_plane_export("http://127.0.0.1:15010/", "mpt_x")


def test_the_control_plane_receiver_takes_the_sidecars_token() -> None:
    assert CP == {
        "endpoint": "http://127.0.0.1:15010/v1/traces",
        "headers": {"authorization": "Bearer mpt_x"},
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            [{"endpoint": "http://collector:4318/v1/traces", "headers": {}}],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"},
            [{"endpoint": "http://collector:4318/v1/traces", "headers": {}}],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/custom",
                "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,X-Tenant=t1",
            },
            [
                {
                    "endpoint": "http://jaeger:4318/custom",
                    "headers": {"api-key": "a b", "x-tenant": "t1"},
                }
            ],
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_HEADERS": "a=1",
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "b=2",
            },
            [{"endpoint": "http://c:4318/v1/traces", "headers": {"b": "2"}}],
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318"},
            [{"endpoint": "https://collector:4318/v1/traces", "headers": {}}],
        ),
        # A certificate file matters only to https.
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent.pem",
            },
            [{"endpoint": "http://collector:4318/v1/traces", "headers": {}}],
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"}, []),
    ],
)
def test_otel_variables_name_a_collector(env: dict[str, str], expected: list[object]) -> None:
    assert env_exports(env) == expected


def test_an_https_collector_trusts_the_certificate_file(tmp_path: Path) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text(pem)
    env = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector:4318/v1/traces",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/ignored.pem",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(tmp_path / "ca.pem"),
    }
    [export] = env_exports(env)
    assert export["ca"] == pem
    unreadable = env | {"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": str(tmp_path / "none.pem")}
    assert env_exports(unreadable) == [], "left out rather than trusting the system instead"


def test_the_control_plane_receives_spans_unless_told_not_to() -> None:
    collector = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    own = {"endpoint": "http://c:4318/v1/traces", "headers": {}}
    assert exports("http://127.0.0.1:15010", "mpt_x", collector) == [CP, own]
    off = collector | {"MESHPY_TRACES_TO_CONTROL_PLANE": "False"}
    assert exports("http://127.0.0.1:15010", "mpt_x", off) == [own]
    assert exports("http://127.0.0.1:15010", "mpt_x", {"MESHPY_TRACES_TO_CONTROL_PLANE": "0"}) == []
    assert exports("http://cp", "t", {"MESHPY_TRACES_TO_CONTROL_PLANE": "yes"})[0]["endpoint"] == (
        "http://cp/v1/traces"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", {}), ("a=1", {"a": "1"}), ("a=1,,b", {"a": "1"}), (" K = v%3D ", {"k": "v="})],
)
def test_parse_headers(text: str, expected: dict[str, str]) -> None:
    assert parse_headers(text) == expected


def test_receivers_are_added_only_to_a_snapshot_with_tracing() -> None:
    plain = json.dumps({"version": 3, "listeners": []})
    assert with_exports(plain, [CP]) == plain
    own = {"endpoint": "http://mine:4318/v1/traces"}
    traced = json.dumps({"version": 3, "tracing": {"sample_percent": 5, "export": [own]}})
    got = json.loads(with_exports(traced, [CP, own]))
    assert got["tracing"] == {"sample_percent": 5, "export": [own, CP]}, "no duplicate"
    many = [{"endpoint": f"http://c{i}/v1/traces"} for i in range(4)]
    full = json.dumps({"tracing": {"export": many}})
    assert json.loads(with_exports(full, [CP]))["tracing"]["export"] == many, "at most four"
    assert with_exports(traced, []) == traced
