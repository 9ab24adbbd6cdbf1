"""Routing rules in Python: builders of validated resources, and a client that applies them.

::

    from meshpy.rules import Client, canary, retry, allow

    with Client() as mesh:
        mesh.apply(
            retry(canary("payment", stable="v1", candidate="v2", weight=10), attempts=2),
            allow("payment", from_=["cart", "shop/checkout"], methods=["POST"]),
        )

Every builder returns a ``meshpy.resources.Resource`` that went through ``parse``, as a
YAML document would: a bad argument raises the same ``ResourceError``. ``Client`` finds
the server and admin token as the ``meshpy`` commands do; ``meshpy script run FILE.py
--dry-run`` runs a script with every client recording instead of applying.
"""

from meshpy.resources import Resource, ResourceError
from meshpy.rules._builders import (
    ab_test,
    allow,
    canary,
    deny,
    load_balancer,
    mirror,
    retry,
    route,
    split,
    timeout,
)
from meshpy.rules._client import ApiError, Applied, Change, Client, Recorded, session

__all__ = [
    "ApiError",
    "Applied",
    "Change",
    "Client",
    "Recorded",
    "Resource",
    "ResourceError",
    "ab_test",
    "allow",
    "canary",
    "deny",
    "load_balancer",
    "mirror",
    "retry",
    "route",
    "session",
    "split",
    "timeout",
]
