"""The `authorization` of a listener: what the core accepts, and the field it names otherwise."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshpy import _core
from meshpy.dataplane import check_snapshot, json_schema


def snapshot(authorization: dict[str, Any]) -> dict[str, Any]:
    listener = {
        "name": "inbound",
        "address": "127.0.0.1:0",
        "protocol": "http",
        "cluster": "app",
        "authorization": authorization,
    }
    return {"listeners": [listener], "clusters": [{"name": "app"}]}


def policy(**fields: Any) -> dict[str, Any]:
    return {"name": "default/p", "action": "allow", **fields}


def test_absent_and_empty_lists_are_both_accepted() -> None:
    rules = [{"sources": []}, {"to": []}, {}]
    doc = snapshot({"policies": [policy(rules=rules)]})
    check_snapshot(doc)
    properties = json_schema()["$defs"]["Authorization"]["properties"]
    assert properties["default"]["default"] == "all_unauthenticated"
    assert _core.Proxy("{}").apply(json.dumps(doc)) == 1


@pytest.mark.parametrize(
    ("authorization", "path"),
    [
        ({"default": "allow"}, "listeners[0].authorization.default"),
        ({"policies": [policy(name="default")]}, "listeners[0].authorization.policies[0].name"),
        (
            {"policies": [policy(), policy(action="deny")]},
            "listeners[0].authorization.policies[1].name",
        ),
        (
            {"policies": [policy(rules=[{"sources": [{"identity": "https://x/y"}]}])]},
            "listeners[0].authorization.policies[0].rules[0].sources[0].identity",
        ),
        (
            {"policies": [policy(rules=[{"sources": [{"identity_prefix": "spiffe://td"}]}])]},
            "listeners[0].authorization.policies[0].rules[0].sources[0].identity_prefix",
        ),
        (
            {"policies": [policy(rules=[{"to": [{"paths": [{"exact": "/a%zz"}]}]}])]},
            "listeners[0].authorization.policies[0].rules[0].to[0].paths[0].exact",
        ),
        (
            {"policies": [policy(rules=[{"to": [{"paths": [{"prefix": "a/"}]}]}])]},
            "listeners[0].authorization.policies[0].rules[0].to[0].paths[0].prefix",
        ),
        (
            {"policies": [policy(rules=[{"to": [{"methods": ["GE T"]}]}])]},
            "listeners[0].authorization.policies[0].rules[0].to[0].methods[0]",
        ),
    ],
)
def test_the_core_refuses_a_bad_authorization(authorization: dict[str, Any], path: str) -> None:
    doc = snapshot(authorization)
    with pytest.raises(_core.ConfigError) as checked:
        check_snapshot(doc)
    assert checked.value.path.startswith(path), checked.value
    with pytest.raises(_core.ConfigError) as refused:
        _core.Proxy("{}").apply(json.dumps(doc))
    assert refused.value.path.startswith(path), refused.value
