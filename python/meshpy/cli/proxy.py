"""``meshpy proxy``: run a proxy from a config file or as a service's sidecar; sync status."""

from __future__ import annotations

from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION
from meshpy.cli._output import OUTPUT_OPTION, Format

__all__ = ["app", "status_table"]

app = typer.Typer(
    help="Run a data plane proxy; see the config sync of the mesh's proxies.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.callback()
def _group() -> None:
    """Run a data plane proxy; see the config sync of the mesh's proxies."""


def status_table(proxies: Any) -> str:
    """The table of ``meshpy proxy status``."""
    from meshpy.cli._output import table

    rows = [
        (
            p["namespace"],
            p["service"],
            p["instance"],
            p["status"],
            "-" if p["acked_version"] is None else p["acked_version"],
            p["current_version"],
            p["error"] or "",
        )
        for p in proxies
    ]
    headers = ["NAMESPACE", "SERVICE", "INSTANCE", "STATUS", "ACKED", "CURRENT", "ERROR"]
    return table(headers, rows)


@app.command("status")
def status(
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Show every proxy as SYNCED, STALE (older or rejected config) or NOT SENT.

    Exits 1 when any proxy is not SYNCED.
    """
    from meshpy.cli._client import Api
    from meshpy.cli._output import emit

    proxies = Api(server, token).json("GET", "/api/v1/proxies")
    emit(proxies, output, status_table)
    if any(p["status"] != "SYNCED" for p in proxies):
        raise typer.Exit(1)


@app.command("run")
def run(
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="Proxy config, YAML or JSON: admin, workers, version, listeners, clusters.",
    ),
    service: str | None = typer.Option(
        None,
        "--service",
        metavar="NAME",
        help="Run as the sidecar of this service: register, get an identity and config.",
    ),
    namespace: str = typer.Option("default", "--namespace", "-n", help="The service's namespace."),
    version: str | None = typer.Option(None, "--version", help="The instance's version (v2)."),
    app_port: int | None = typer.Option(
        None, "--app-port", min=1, max=65535, help="Port the app listens on (inbound goes there)."
    ),
    address: str = typer.Option(
        "127.0.0.1", "--address", help="Address other sidecars reach this one at."
    ),
    inbound_port: int = typer.Option(
        0, "--inbound-port", min=0, max=65535, help="Inbound (mTLS) port; 0 picks a free one."
    ),
    outbound_port: int = typer.Option(
        0, "--outbound-port", min=0, max=65535, help="Outbound port for the app; 0 picks one."
    ),
    admin: str = typer.Option(
        "127.0.0.1:0", "--admin", metavar="IP:PORT", help="Admin listener (/ready, /metrics)."
    ),
    zone: str | None = typer.Option(None, "--zone", help="Locality, for zone-aware balancing."),
    server: str | None = typer.Option(
        None, "--server", envvar="MESHPY_SERVER", metavar="URL", help="Control plane URL."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="MESHPY_TOKEN",
        metavar="TOKEN",
        help="Join token of the service (meshpy token create --service NAME).",
    ),
    drain_timeout: str = typer.Option(
        "10s",
        "--drain-timeout",
        metavar="DURATION",
        help="On SIGTERM/SIGINT, how long in-flight requests may finish: 10, 500ms, 10s.",
    ),
    addresses_json: bool = typer.Option(
        False,
        "--addresses-json",
        help="Also print the bound addresses as one JSON object per line on stdout.",
    ),
) -> None:
    """Serve the listeners in FILE, or run as the sidecar of --service, until SIGTERM/SIGINT.

    With --config, SIGHUP re-reads FILE; a bad file exits 2 with the field named, and on
    SIGHUP a bad file is reported and the running config keeps serving.

    With --service, the proxy registers an instance with the control plane (--server,
    --token: a join token), gets its certificate from the mesh CA and renews it, follows
    its config, and reports healthy once it can serve; SIGTERM deregisters, drains and
    stops. Without --app-port it only carries the app's outbound calls.

    The bound addresses go to stderr as "meshpy proxy: admin IP:PORT, NAME IP:PORT, ...".
    """
    drain_s = _seconds(drain_timeout)
    if (config is None) == (service is None):
        raise typer.BadParameter("give either --config FILE or --service NAME")
    if config is not None:
        from meshpy import proxyrun

        raise typer.Exit(proxyrun.run(config, drain_s=drain_s, addresses_json=addresses_json))
    if not token:
        raise typer.BadParameter("a sidecar needs a join token", param_hint="--token")
    from meshpy.sidecar import main
    from meshpy.sidecar.runner import SidecarOptions

    assert service is not None
    options = SidecarOptions(
        server=server or "http://127.0.0.1:15010",
        token=token,
        namespace=namespace,
        service=service,
        version=version,
        app_port=app_port,
        address=address,
        inbound_port=inbound_port,
        outbound_port=outbound_port,
        admin=admin or None,
        zone=zone,
    )
    raise typer.Exit(main.run(options, drain_s=drain_s, addresses_json=addresses_json))


def _seconds(text: str) -> float:
    """Read "10" as 10 seconds and "500ms", "10s", "1m" as durations."""
    from meshpy.durations import parse_seconds

    try:
        seconds = parse_seconds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--drain-timeout") from exc
    if not 0 <= seconds < 1e9:
        msg = f"{text!r} is not a number of seconds >= 0"
        raise typer.BadParameter(msg, param_hint="--drain-timeout")
    return seconds
