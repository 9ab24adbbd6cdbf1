"""``meshpy run --service NAME -- COMMAND...``: an app and its sidecar, in one process tree.

The options of a sidecar are defined here once; ``meshpy proxy run --service`` (a sidecar
without an app to supervise) uses them too. After checking them, the command replaces
itself with the light sidecar process (``meshpy.sidecar.main.exec_sidecar``).
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = [
    "ADDRESS_OPTION",
    "ADMIN_OPTION",
    "DRAIN_DELAY_OPTION",
    "DRAIN_TIMEOUT_OPTION",
    "INBOUND_OPTION",
    "LABEL_OPTION",
    "NAMESPACE_OPTION",
    "OUTBOUND_OPTION",
    "PROTOCOL_OPTION",
    "SERVER_OPTION",
    "STATE_DIR_OPTION",
    "TOKEN_OPTION",
    "UPSTREAM_OPTION",
    "VERSION_OPTION",
    "ZONE_OPTION",
    "launch_sidecar",
    "parse_seconds_option",
    "run",
]

NAMESPACE_OPTION: Any = typer.Option("default", "--namespace", "-n", help="The namespace.")
VERSION_OPTION: Any = typer.Option(
    None, "--version", help="The instance's version, e.g. v2 (then it is in payment-v2)."
)
ADDRESS_OPTION: Any = typer.Option(
    "127.0.0.1", "--address", help="Address other sidecars reach this one at."
)
INBOUND_OPTION: Any = typer.Option(
    0, "--inbound-port", min=0, max=65535, help="Inbound (mTLS) port; 0 picks a free one."
)
OUTBOUND_OPTION: Any = typer.Option(
    0, "--outbound-port", min=0, max=65535, help="Outbound port for the app; 0 picks one."
)
ADMIN_OPTION: Any = typer.Option(
    "127.0.0.1:0", "--admin", metavar="IP:PORT", help="Admin listener (/ready, /stats, /metrics)."
)
ACCESS_LOG_OPTION: Any = typer.Option(
    None,
    "--access-log",
    metavar="-|FILE",
    help="Write a JSON line per request as it ends (with its trace id; never its headers) "
    "to stderr (-) or FILE, appended to.",
)
ISTIO_METRICS_OPTION: Any = typer.Option(
    False,
    "--istio-metrics",
    envvar="MESHPY_ISTIO_METRICS",
    help="Also export Istio's standard metrics (istio_requests_total, ...) on /metrics, "
    "for Istio's Grafana dashboards and Kiali.",
)
ZONE_OPTION: Any = typer.Option(None, "--zone", help="Locality, for zone-aware balancing.")
LABEL_OPTION: Any = typer.Option(
    None, "--label", "-l", metavar="KEY=VALUE", help="An instance label (repeatable)."
)
SERVER_OPTION: Any = typer.Option(
    "http://127.0.0.1:15010",
    "--server",
    envvar="MESHPY_SERVER",
    metavar="URL",
    help="Control plane URL.",
)
TOKEN_OPTION: Any = typer.Option(
    None,
    "--token",
    envvar="MESHPY_TOKEN",
    metavar="TOKEN",
    help="Join token of the service (meshpy token create --service NAME); "
    "prefer MESHPY_TOKEN, which other users cannot see.",
)
STATE_DIR_OPTION: Any = typer.Option(
    None,
    "--state-dir",
    metavar="DIR",
    help="Keep the last config and certificate here, to serve with them when restarted "
    "while the control plane is down.",
)
PROTOCOL_OPTION: Any = typer.Option(
    None,
    "--protocol",
    metavar="http|grpc|tcp",
    help="What the service speaks [default: http]; grpc: the app serves HTTP/2 (h2c).",
)
UPSTREAM_OPTION: Any = typer.Option(
    None,
    "--upstream",
    "-u",
    metavar="SERVICE[.NS]=PORT",
    help="A local TCP port (127.0.0.1:PORT) to reach SERVICE, for non-HTTP clients "
    "(repeatable): --upstream payment-db=5433.",
)
DRAIN_TIMEOUT_OPTION: Any = typer.Option(
    "10s",
    "--drain-timeout",
    metavar="DURATION",
    help="On SIGTERM/SIGINT, how long in-flight requests may finish: 10, 500ms, 10s.",
)
DRAIN_DELAY_OPTION: Any = typer.Option(
    "2s",
    "--drain-delay",
    metavar="DURATION",
    help="After deregistering, keep serving this long while other sidecars drop this one.",
)
EVENTS_OPTION: Any = typer.Option(
    None,
    "--events",
    metavar="FILE",
    help="Append what happens (registered, ready, app exits, ...) to FILE as JSON lines, "
    "for tools that run sidecars.",
)


def parse_seconds_option(text: str, option: str) -> float:
    """Read "10" as 10 seconds and "500ms", "10s", "1m" as durations."""
    from meshpy.durations import parse_seconds

    try:
        seconds = parse_seconds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc
    if not 0 <= seconds < 1e9:
        msg = f"{text!r} is not a number of seconds >= 0"
        raise typer.BadParameter(msg, param_hint=option)
    return seconds


def _labels(pairs: list[str] | None) -> dict[str, str]:
    labels = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


def _upstreams(pairs: list[str] | None) -> dict[str, int]:
    upstreams = {}
    for pair in pairs or []:
        name, sep, port = pair.partition("=")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise typer.BadParameter(f"{pair!r} is not SERVICE=PORT", param_hint="--upstream")
        upstreams[name] = int(port)
    return upstreams


def _check_appendable(path: str | None, option: str, *, dash_is_stderr: bool = False) -> None:
    """Refuse a file the sidecar could not append to, before it starts."""
    if path is None or (dash_is_stderr and path == "-"):
        return
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise typer.BadParameter(f"cannot append to {path}: {reason}", param_hint=option) from None


def launch_sidecar(**fields: Any) -> None:
    """Check the options, then become the sidecar process; does not return."""
    from meshpy.sidecar.main import exec_sidecar
    from meshpy.sidecar.runner import SidecarOptions

    if not fields.get("token"):
        raise typer.BadParameter(
            "a sidecar needs a join token", param_hint="--token / MESHPY_TOKEN"
        )
    drain_s = parse_seconds_option(fields.pop("drain_timeout"), "--drain-timeout")
    fields["drain_delay_s"] = parse_seconds_option(fields.pop("drain_delay"), "--drain-delay")
    fields["labels"] = _labels(fields.pop("label"))
    fields["upstreams"] = _upstreams(fields.pop("upstream"))
    _check_appendable(fields.get("events"), "--events")
    _check_appendable(fields.get("access_log"), "--access-log", dash_is_stderr=True)
    protocol = fields.get("protocol")
    if protocol not in (None, "http", "grpc", "tcp"):
        raise typer.BadParameter("use http, grpc or tcp", param_hint="--protocol")
    addresses_json = fields.pop("addresses_json")
    try:
        options = SidecarOptions(**fields)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    exec_sidecar(options, drain_s=drain_s, addresses_json=addresses_json)


def run(
    command: list[str] = typer.Argument(
        ..., metavar="-- COMMAND...", help="The app and its arguments, after --."
    ),
    service: str = typer.Option(..., "--service", "-s", help="The service this app is."),
    namespace: str = NAMESPACE_OPTION,
    version: str | None = VERSION_OPTION,
    port: int | None = typer.Option(
        None,
        "--port",
        "-p",
        min=1,
        max=65535,
        help="Port the app listens on (given to it as PORT); picked free if not given.",
    ),
    health: str = typer.Option(
        "tcp",
        "--health",
        metavar="PATH|tcp",
        help="How the app is checked before it gets traffic: an HTTP path (/healthz) or tcp.",
    ),
    restart: str = typer.Option(
        "always", "--restart", metavar="always|on-failure|never", help="When the app is restarted."
    ),
    stop_grace: str = typer.Option(
        "10s", "--stop-grace", metavar="DURATION", help="SIGTERM to SIGKILL, when stopping the app."
    ),
    address: str = ADDRESS_OPTION,
    inbound_port: int = INBOUND_OPTION,
    outbound_port: int = OUTBOUND_OPTION,
    admin: str = ADMIN_OPTION,
    access_log: str | None = ACCESS_LOG_OPTION,
    istio_metrics: bool = ISTIO_METRICS_OPTION,
    zone: str | None = ZONE_OPTION,
    label: list[str] | None = LABEL_OPTION,
    protocol: str | None = PROTOCOL_OPTION,
    upstream: list[str] | None = UPSTREAM_OPTION,
    server: str = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
    state_dir: str | None = STATE_DIR_OPTION,
    drain_timeout: str = DRAIN_TIMEOUT_OPTION,
    drain_delay: str = DRAIN_DELAY_OPTION,
    events: str | None = EVENTS_OPTION,
    addresses_json: bool = typer.Option(
        False, "--addresses-json", help="Also print the bound addresses as JSON lines on stdout."
    ),
) -> None:
    """Run COMMAND as an instance of --service, with its sidecar.

    The app gets PORT (where to listen), HTTP_PROXY and MESHPY_OUTBOUND (how to call
    other services by name: http://payment/charge) and NO_PROXY. The sidecar registers
    the instance, gets its certificate, follows its config, reports it healthy once the
    app answers, restarts the app when it dies (--restart), and on SIGTERM/SIGINT:
    deregisters, lets in-flight requests finish, stops the app, stops.
    """
    from meshpy.sidecar.supervisor import AppSpec

    if restart not in ("always", "on-failure", "never"):
        raise typer.BadParameter("use always, on-failure or never", param_hint="--restart")
    if health != "tcp" and not health.startswith("/"):
        raise typer.BadParameter("an HTTP path such as /healthz, or tcp", param_hint="--health")
    app = AppSpec(
        command=tuple(command),
        restart=restart,  # type: ignore[arg-type]
        stop_grace_s=parse_seconds_option(stop_grace, "--stop-grace"),
    )
    launch_sidecar(
        server=server,
        token=token,
        namespace=namespace,
        service=service,
        version=version,
        app_port=port,
        address=address,
        inbound_port=inbound_port,
        outbound_port=outbound_port,
        admin=admin or None,
        access_log=access_log,
        istio_metrics=istio_metrics,
        zone=zone,
        label=label,
        protocol=protocol,
        upstream=upstream,
        app=app,
        health=health,
        state_dir=state_dir,
        drain_timeout=drain_timeout,
        drain_delay=drain_delay,
        events=events,
        addresses_json=addresses_json,
    )
