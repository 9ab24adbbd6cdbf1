"""Refusals of any document name their field: kind, apiVersion, metadata, YAML streams."""

from __future__ import annotations

from typing import Any

import pytest

from meshpy.resources import ResourceError, parse, parse_stream
from tests.unit.refusals import (
    B0,
    DELETE,
    assert_refused,
    authz,
    backend_policy,
    case,
    route,
    set_field,
)

CASES = [
    case("no-kind", "kind", DELETE, "required: one of HTTPRoute"),
    case("unknown-kind", "kind", "VirtualService", "unknown kind 'VirtualService'"),
    case("kind-case", "kind", "HttpRoute", "did you mean HTTPRoute?"),
    case(
        "api-version",
        "apiVersion",
        "networking.istio.io/v1",
        "HTTPRoute is gateway.networking.k8s.io/v1",
    ),
    case("no-api-version", "apiVersion", DELETE, "required"),
    case("no-spec", "spec", DELETE, "required"),
    case("no-metadata", "metadata", DELETE, "required"),
    case("no-name", "metadata.name", DELETE, "required"),
    case("name-format", "metadata.name", "Canary", "'Canary' is not a valid name"),
    case("namespace-dots", "metadata.namespace", "a.b", "is not a valid name"),
    case("generate-name", "metadata.generateName", "canary-", "not supported by meshpy"),
    case("finalizers", "metadata.finalizers", ["x"], "not supported by meshpy"),
    case("label-key", "metadata.labels", {"bad key": "x"}, "invalid label key 'bad key'"),
    case("label-value", "metadata.labels", {"tier": "-x"}, "invalid value '-x' of label 'tier'"),
    case("label-number", "metadata.labels", {"version": 2}, "quote it in YAML", at=".version"),
    case("annotation-key", "metadata.annotations", {"/x": "y"}, "invalid annotation key"),
    case("spec-not-mapping", "spec", ["rules"], "must be a mapping"),
]


@pytest.mark.parametrize(("make", "path", "value", "error_path", "message"), CASES)
def test_refusal_names_the_field(
    make: Any, path: str, value: object, error_path: str, message: str
) -> None:
    assert_refused(set_field(make(), path, value), error_path, message)


def test_the_templates_are_valid() -> None:
    for make in (route, backend_policy, authz):
        parse(make())


def test_errors_in_metadata_and_spec_are_all_listed() -> None:
    doc = set_field(set_field(route(), "metadata.name", "Bad"), f"{B0}.weight", -1)
    with pytest.raises(ResourceError) as info:
        parse(doc)
    assert [path for path, _ in info.value.details] == ["metadata.name", f"{B0}.weight"]


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("kind: [", "", "invalid YAML"),
        ("a: 1\na: 2\n", "", "duplicate key 'a'"),
        ("just text", "[0]", "expected a mapping"),
        ("- 1\n- 2\n", "[0]", "expected a mapping"),
        ('{"kind": "HTTPRoute"', "", "invalid YAML"),
    ],
)
def test_stream_syntax_errors(text: str, path: str, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        parse_stream(text)
    assert info.value.path == path
    assert message in info.value.message


def test_stream_errors_carry_the_document_index() -> None:
    import yaml

    good, bad = route(), set_field(route(), f"{B0}.weight", 2_000_000)
    worse = set_field(backend_policy(), "spec.loadBalancer.type", "random")
    text = yaml.safe_dump_all([good, None, bad, worse])
    with pytest.raises(ResourceError) as info:
        parse_stream(text)
    assert info.value.path == f"[2].{B0}.weight"
    assert str(info.value).startswith(f"[2].{B0}.weight: must be at most 1000000")
    assert [p for p, _ in info.value.details] == [f"[2].{B0}.weight", "[3].spec.loadBalancer.type"]


def test_yaml_errors_say_where() -> None:
    with pytest.raises(ResourceError, match=r"invalid YAML: .*\(line \d+, column \d+\)"):
        parse_stream("kind: HTTPRoute\nspec:\n  rules: [\n")
