"""``meshpy explain``: what the mesh does with one request, and why, as its sidecars decide it.

``explain(state, ExplainRequest)`` takes the registry's state (``meshpy.snapshot.MeshState``)
and a request from one service's app to another by name, and returns an ``Explanation``:
the route rule the caller's sidecar follows (and the matches of higher precedence it
passed over, each with the condition that failed), every backend of that rule with its
weight, the path it is sent with and its cluster's BackendPolicy, and for each version of
the instances behind a backend, the AuthorizationPolicy decision of their sidecars with
the policy and rule that made it. The decisions are the proxy core's own
(``meshpy._core.explain``), on listeners built as each sidecar gets them: nothing is
decided twice.

- ``model``: the question and the answer, as the REST API takes and gives them.
- ``build``: the answer, from the state.
- ``words``: conditions and rules of the proxy config in words.
"""

from __future__ import annotations

from meshpy.explain.build import ExplainError, explain
from meshpy.explain.model import ExplainRequest, Explanation

__all__ = ["ExplainError", "ExplainRequest", "Explanation", "explain"]
