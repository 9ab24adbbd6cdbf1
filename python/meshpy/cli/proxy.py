"""``meshpy proxy``: run a proxy from a config file or as a service's sidecar; sync status."""

from __future__ import annotations

from typing import Any

import typer

from meshpy.cli import run as run_options
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
        help=(
            "Proxy config, YAML or JSON: admin, workers, max_connections, version, "
            "listeners, clusters."
        ),
    ),
    service: str | None = typer.Option(
        None,
        "--service",
        metavar="NAME",
        help="Run as the sidecar of this service: register, get an identity and config.",
    ),
    namespace: str = run_options.NAMESPACE_OPTION,
    version: str | None = run_options.VERSION_OPTION,
    app_port: int | None = typer.Option(
        None, "--app-port", min=1, max=65535, help="Port the app listens on (inbound goes there)."
    ),
    address: str = run_options.ADDRESS_OPTION,
    inbound_port: int = run_options.INBOUND_OPTION,
    outbound_port: int = run_options.OUTBOUND_OPTION,
    admin: str = run_options.ADMIN_OPTION,
    access_log: str | None = run_options.ACCESS_LOG_OPTION,
    istio_metrics: bool = run_options.ISTIO_METRICS_OPTION,
    zone: str | None = run_options.ZONE_OPTION,
    label: list[str] | None = run_options.LABEL_OPTION,
    protocol: str | None = run_options.PROTOCOL_OPTION,
    upstream: list[str] | None = run_options.UPSTREAM_OPTION,
    server: str = run_options.SERVER_OPTION,
    token: str | None = run_options.TOKEN_OPTION,
    state_dir: str | None = run_options.STATE_DIR_OPTION,
    drain_timeout: str = run_options.DRAIN_TIMEOUT_OPTION,
    drain_delay: str = run_options.DRAIN_DELAY_OPTION,
    events: str | None = run_options.EVENTS_OPTION,
    addresses_json: bool = typer.Option(
        False,
        "--addresses-json",
        help="Also print the bound addresses as one JSON object per line on stdout.",
    ),
) -> None:
    """Serve the listeners in FILE, or run as the sidecar of --service, until SIGTERM/SIGINT.

    With --config, SIGHUP re-reads FILE; a bad file exits 2 with the field named, and on
    SIGHUP a bad file is reported and the running config keeps serving.

    With --service, the proxy is the sidecar of an app that something else runs (systemd,
    another supervisor): it registers an instance with the control plane (--server, a
    join token in MESHPY_TOKEN), gets its certificate from the mesh CA and renews it,
    follows its config, and reports it healthy once it can serve (and the app, at
    --app-port, accepts connections); SIGTERM deregisters, drains and stops. To have
    meshpy run the app as well, use `meshpy run`.

    The bound addresses go to stderr as "meshpy proxy: admin IP:PORT, NAME IP:PORT, ...".
    """
    if (config is None) == (service is None):
        raise typer.BadParameter("give either --config FILE or --service NAME")
    if config is not None and events is not None:
        raise typer.BadParameter("only a sidecar reports events", param_hint="--events")
    if config is not None:
        from meshpy import proxyrun

        drain_s = run_options.parse_seconds_option(drain_timeout, "--drain-timeout")
        raise typer.Exit(proxyrun.run(config, drain_s=drain_s, addresses_json=addresses_json))
    run_options.launch_sidecar(
        server=server,
        token=token,
        namespace=namespace,
        service=service,
        version=version,
        app_port=app_port,
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
        health="tcp" if app_port is not None else None,
        state_dir=state_dir,
        drain_timeout=drain_timeout,
        drain_delay=drain_delay,
        events=events,
        addresses_json=addresses_json,
    )
