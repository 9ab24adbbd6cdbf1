"""What an app does for its calls to join their traces: copy the trace headers of the
request it is serving onto every call that request causes.

A sidecar cannot do this itself: it sees a request come in and, later, requests go out,
but not which one caused which. Apps copy the headers, as they would for any mesh:

    import urllib.request
    from meshpy.tracing import propagation_headers

    def handle(request_headers):
        call = urllib.request.Request("http://payment/charge",
                                      headers=propagation_headers(request_headers))
        ...

Standard library only: any app can import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

__all__ = ["PROPAGATION_HEADERS", "propagation_headers"]

PROPAGATION_HEADERS = (
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-request-id",
)
"""W3C Trace Context, B3 in both forms, and the request id: what the sidecars read."""


class _HasItems(Protocol):
    def items(self) -> Iterable[tuple[str, str]]: ...


def propagation_headers(
    incoming: Mapping[str, str] | _HasItems | Iterable[tuple[str, str]],
) -> dict[str, str]:
    """The trace headers of ``incoming`` (a dict, ``http.server``'s or a framework's
    headers, or ``(name, value)`` pairs), with lower-case names, to send on a call."""
    pairs = incoming.items() if hasattr(incoming, "items") else incoming
    wanted = set(PROPAGATION_HEADERS)
    return {name.lower(): value for name, value in pairs if name.lower() in wanted}
