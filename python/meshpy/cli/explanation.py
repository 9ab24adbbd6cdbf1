"""The ``meshpy explain`` text: the API's explanation of one request, drawn with rich.

``explanation_text(data)`` takes the JSON answer of ``POST /api/v1/explain`` and draws: the
request, the route rule and why (the matches passed over, with the condition each fails),
timeouts and retries; the backends with their weights, the path each is sent with and the
BackendPolicy in force; then, per backend and version, the destination's authorization
decision with the policy and rule that made it, and what the caller gets.
"""

from __future__ import annotations

from typing import Any

from meshpy.cli._output import render

__all__ = ["explanation_text", "outcome"]


def outcome(backend: dict[str, Any], destination: dict[str, Any] | None) -> str:
    """What the caller gets when a request lands there: the app's answer, or a sidecar's."""
    refused = (destination or {}).get("refused") or backend.get("refused")
    if refused:
        return f"{refused['status']} {refused['reason']}"
    if backend["weight"] == 0:
        return "never sent (weight 0)"
    return "the app answers"


def explanation_text(data: dict[str, Any]) -> str:
    """The whole explanation, as ``-o table`` prints it."""
    from rich.table import Table
    from rich.text import Text

    request = data["request"]
    source, destination = data["source"], data["destination"]
    target = request["path"] + (f"?{request['query']}" if request["query"] else "")
    headers = "".join(f" -H {h['name']}:{h['value']}" for h in request["headers"])
    caller = source["identity"] or "plaintext, no identity"
    title = Text(
        f"{request['method']} {target}{headers} from {source['namespace']}/{source['service']}"
        f" ({caller}) to {destination['host']}",
        style="bold",
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    for name, value in _route_facts(data):
        facts.add_row(name, value)
    parts: list[Any] = [title, facts]
    if data["backends"]:
        parts += ["", _backends_table(data["backends"]), "", _destinations_table(data["backends"])]
    return render(*parts)


def _rule_name(route: str | None, rule: int, match: int | None) -> str:
    where = f"HTTPRoute {route} rule {rule}" if route else "the service's own rule (no HTTPRoute)"
    return where if match is None else f"{where}, match {match}"


def _route_facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    route = data["route"]
    facts: list[tuple[str, str]] = []
    if route["virtual_host"] is None:
        facts.append(("route", f"no virtual host serves {data['destination']['host']}"))
    elif route["matched"] is not None:
        matched = route["matched"]
        name = _rule_name(matched["route"], matched["rule"], matched["match"])
        facts.append(
            ("route", f"{route['virtual_host']}: {name}: {' and '.join(matched['conditions'])}")
        )
    else:
        facts.append(("route", f"{route['virtual_host']}: no rule matches"))
    for skipped in route["skipped"]:
        name = _rule_name(skipped["route"], skipped["rule"], skipped["match"])
        facts.append(("passed over", f"{name}: fails {skipped['failed']}"))
    if route["timeout"] is not None:
        bounds = f"request {route['timeout']}"
        if route["backend_timeout"] is not None:
            bounds += f", each try {route['backend_timeout']}"
        facts.append(("timeouts", bounds))
    retry = route["retry"]
    if retry is not None:
        codes = ", ".join(str(c) for c in retry["codes"]) or "connection failures only"
        facts.append(("retries", f"{retry['attempts']} on {codes}, backoff {retry['backoff']}"))
    elif route["matched"] is not None:
        facts.append(("retries", "none"))
    refused = data["refused"]
    if refused is not None:
        facts.append(
            (
                "answer",
                f"{refused['status']} {refused['reason']} from the caller's sidecar: "
                f"{refused['detail']}",
            )
        )
    return facts


def _backends_table(backends: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("BACKEND", "WEIGHT", "SHARE", "SENT AS", "ENDPOINTS", "BACKENDPOLICY"):
        table.add_column(column, no_wrap=column != "BACKENDPOLICY")
    for backend in backends:
        sent = backend["path"] + (f" (host {backend['host']})" if backend["host"] else "")
        for mirror in backend["mirrors"]:
            sent += f", {mirror['percent']:g}% copied to {mirror['cluster']}"
        table.add_row(
            backend["cluster"],
            str(backend["weight"]),
            f"{backend['share']:.4g}%",
            sent,
            str(backend["endpoints"]),
            _policy(backend["policy"]),
        )
    return table


def _policy(policy: dict[str, Any]) -> str:
    name = policy["name"] or "none (defaults)"
    settings = [f"lb {policy['load_balancer']}"]
    for key, value in policy["settings"].items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {_value(v)}" for k, v in value.items())
            settings.append(f"{key} {inner}")
        else:
            settings.append(f"{key} {_value(value)}")
    return f"{name}: {'; '.join(settings)}"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _destinations_table(backends: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("BACKEND", "VERSION", "INSTANCES", "AUTHZ", "ANSWER", "WHY"):
        table.add_column(column, no_wrap=column != "WHY")
    for backend in backends:
        if not backend["destinations"]:
            table.add_row(backend["cluster"], "", "0", "", outcome(backend, None), "")
        for destination in backend["destinations"]:
            authz = destination["authorization"]
            table.add_row(
                backend["cluster"],
                destination["version"] or "",
                str(len(destination["instances"])),
                "ALLOW" if authz["allowed"] else "DENY",
                outcome(backend, destination),
                authz["why"],
            )
    return table
