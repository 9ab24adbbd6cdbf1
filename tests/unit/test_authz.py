"""AuthorizationPolicy resources to a sidecar's inbound authorization config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshpy import _core
from meshpy.authz import inbound_authorization
from meshpy.resources import Resource, ResourceError, parse


def policy(name: str, spec: dict[str, Any], namespace: str = "default") -> Resource:
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


PAYMENT = [{"kind": "Service", "name": "payment"}]
CALLERS = policy(
    "payment-callers",
    {
        "targetRefs": PAYMENT,
        "action": "ALLOW",
        "rules": [
            {
                "sources": [
                    {"type": "ServiceAccount", "serviceAccount": {"name": "cart"}},
                    {"type": "ServiceAccount", "serviceAccount": {"namespace": "ops", "name": "*"}},
                    {"type": "SPIFFE", "spiffe": "spiffe://other.org/ns/x/sa/y"},
                ],
                "to": [{"paths": ["/charge", "/refunds/*"], "methods": ["POST"]}],
            }
        ],
    },
)


def test_allow_policy_with_sources_and_paths() -> None:
    got = inbound_authorization(
        (CALLERS,), "default", ("payment", "payment-v1"), "meshpy.local", "all-unauthenticated"
    )
    assert got == {
        "default": "all_unauthenticated",
        "policies": [
            {
                "name": "default/payment-callers",
                "action": "allow",
                "rules": [
                    {
                        "sources": [
                            {"identity": "spiffe://meshpy.local/ns/default/sa/cart"},
                            {"identity_prefix": "spiffe://meshpy.local/ns/ops/sa/"},
                            {"identity": "spiffe://other.org/ns/x/sa/y"},
                        ],
                        "to": [
                            {
                                "paths": [{"exact": "/charge"}, {"prefix": "/refunds/"}],
                                "methods": ["POST"],
                            }
                        ],
                    }
                ],
            }
        ],
    }


def test_nothing_to_enforce_gives_no_config() -> None:
    assert (
        inbound_authorization((CALLERS,), "default", ("cart",), "t", "all-unauthenticated") is None
    )
    # Same name, other namespace: not this service.
    assert (
        inbound_authorization((CALLERS,), "shop", ("payment",), "t", "all-unauthenticated") is None
    )


def test_a_strict_default_is_sent_without_policies() -> None:
    assert inbound_authorization((), "default", ("cart",), "t", "deny") == {
        "default": "deny",
        "policies": [],
    }
    got = inbound_authorization((), "default", ("cart",), "t", "all-authenticated")
    assert got == {"default": "all_authenticated", "policies": []}


def test_version_services_and_absent_or_empty_lists() -> None:
    deny_v2 = policy(
        "no-v2",
        {
            "targetRefs": [{"kind": "Service", "name": "payment-v2"}],
            "action": "DENY",
            "rules": [{}, {"sources": [], "to": []}],
        },
    )
    got = inbound_authorization((deny_v2,), "default", ("payment", "payment-v2"), "t", "deny")
    assert got is not None
    assert got["policies"] == [
        {"name": "default/no-v2", "action": "deny", "rules": [{}, {"sources": [], "to": []}]}
    ]
    assert inbound_authorization((deny_v2,), "default", ("payment", "payment-v1"), "t", "deny") == {
        "default": "deny",
        "policies": [],
    }


def test_without_a_trust_domain_service_accounts_match_nobody() -> None:
    got = inbound_authorization((CALLERS,), "default", ("payment",), None, "all-unauthenticated")
    assert got is not None
    assert got["policies"][0]["rules"][0]["sources"] == [
        {"identity": "spiffe://other.org/ns/x/sa/y"}
    ]


def test_a_spiffe_id_no_certificate_can_carry_is_refused_at_apply() -> None:
    # The data plane refuses "." and ".." segments; the resource refuses them first.
    with pytest.raises(ResourceError, match="is not a SPIFFE ID"):
        policy(
            "dotted",
            {
                "targetRefs": [{"kind": "Service", "name": "payment"}],
                "action": "ALLOW",
                "rules": [{"sources": [{"type": "SPIFFE", "spiffe": "spiffe://t/ns/../sa/cart"}]}],
            },
        )
    dotted_name = policy(
        "dotted-name",
        {
            "targetRefs": [{"kind": "Service", "name": "payment"}],
            "action": "ALLOW",
            "rules": [{"sources": [{"type": "SPIFFE", "spiffe": "spiffe://t/ns/x/sa/.cart"}]}],
        },
    )
    got = inbound_authorization((dotted_name,), "default", ("payment",), "t", "deny")
    assert got is not None
    listener = {
        "name": "in",
        "address": "127.0.0.1:0",
        "protocol": "http",
        "cluster": "b",
        "authorization": got,
    }
    snapshot = {"listeners": [listener], "clusters": [{"name": "b"}]}
    assert _core.Proxy("{}").apply(json.dumps(snapshot)) == 1
