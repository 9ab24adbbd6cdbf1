"""AuthorizationPolicies and MESHPY_AUTHZ_DEFAULT reach the inbound listeners they target."""

from __future__ import annotations

from typing import Any

import httpx

from meshpy import _core
from tests.api.conftest import StartServer
from tests.api.test_proxies import _config, _healthy

POLICY = {
    "apiVersion": "policy.meshpy.io/v1alpha1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "payment-callers", "namespace": "default"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
        "action": "ALLOW",
        "rules": [
            {
                "sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}],
                "to": [{"paths": ["/charge"], "methods": ["POST"]}],
            }
        ],
    },
}
PATH = "/api/v1/namespaces/default/authorizationpolicies/payment-callers"


def _inbound(client: httpx.Client, instance: str) -> dict[str, Any]:
    """The inbound listener of the instance's snapshot, which the core accepts."""
    served = _config(client, instance)
    assert _core.Proxy("{}").apply(served.text) == served.json()["version"]
    [inbound] = [lst for lst in served.json()["listeners"] if lst["name"] == "inbound"]
    return dict(inbound)


def test_a_policy_and_the_mesh_default_reach_the_targeted_sidecar(
    start_server: StartServer,
) -> None:
    api = start_server(authz_default="all-authenticated")
    payment = _healthy(api, "payment", app_port=8080)
    cart = _healthy(api, "cart", app_port=8081)
    assert _inbound(api.admin, payment)["authorization"] == {
        "default": "all_authenticated",
        "policies": [],
    }

    assert api.admin.put(PATH, json=POLICY).status_code in (200, 201)
    authorization = _inbound(api.admin, payment)["authorization"]
    assert authorization == {
        "default": "all_authenticated",
        "policies": [
            {
                "name": "default/payment-callers",
                "action": "allow",
                "rules": [
                    {
                        "sources": [{"identity": "spiffe://meshpy.local/ns/default/sa/cart"}],
                        "to": [{"paths": [{"exact": "/charge"}], "methods": ["POST"]}],
                    }
                ],
            }
        ],
    }
    # cart is not a target: only the mesh default applies to it.
    assert _inbound(api.admin, cart)["authorization"] == {
        "default": "all_authenticated",
        "policies": [],
    }

    assert api.admin.delete(PATH).status_code in (200, 204)
    assert _inbound(api.admin, payment)["authorization"]["policies"] == []


def test_by_default_an_untargeted_sidecar_gets_no_authorization(start_server: StartServer) -> None:
    api = start_server()
    payment = _healthy(api, "payment", app_port=8080)
    assert "authorization" not in _inbound(api.admin, payment)
    api.admin.put(PATH, json=POLICY)
    assert "authorization" in _inbound(api.admin, payment)
