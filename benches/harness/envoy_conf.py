"""Envoy's static bootstrap in pieces: listeners, clusters, mTLS contexts, admin, command line."""

from __future__ import annotations

import json
from pathlib import Path

from harness.identities import SERVER_ID, Identity

HCM = (
    "type.googleapis.com/envoy.extensions.filters.network"
    ".http_connection_manager.v3.HttpConnectionManager"
)
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
TLS_SOCKETS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
FLAGS = ["--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"]


def envoy_argv(envoy: str, conf: Path) -> list[str]:
    """Envoy with one worker thread, no hot restart, warnings only."""
    return [envoy, "-c", str(conf), *FLAGS]


def envoy_admin(port: int) -> str:
    return f"admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n"


def envoy_static(
    listeners: list[str], clusters: list[str], admin: int | None = None, runtime: str = ""
) -> str:
    """A bootstrap of static listeners and clusters, with an admin listener if given and
    `runtime` (envoy_runtime) if given."""
    return (
        (envoy_admin(admin) if admin is not None else "")
        + runtime
        + "static_resources:\n  listeners:\n"
        + "".join(listeners)
        + "  clusters:\n"
        + "".join(clusters)
    )


def indent(text: str, spaces: int) -> str:
    """`text` with every line indented by `spaces`."""
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


def envoy_tls_common(ident: Identity, root: Path, alpn: list[str], spaces: int) -> str:
    """common_tls_context: TLS 1.3 only, our certificate, the root as trust anchor."""
    text = f"""common_tls_context:
  tls_params: {{tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_3}}
  alpn_protocols: {json.dumps(alpn)}
  tls_certificates:
  - certificate_chain: {{filename: "{ident.chain}"}}
    private_key: {{filename: "{ident.key}"}}
  validation_context:
    trusted_ca: {{filename: "{root}"}}
"""
    return indent(text, spaces)


def envoy_route_all(cluster: str) -> str:
    """A route_config that sends every request to `cluster`."""
    return f"""name: local
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {{prefix: "/"}}
    route: {{cluster: {cluster}}}
"""


def envoy_hcm_listener(
    name: str,
    port: int,
    codec: str,
    tls: str,
    route_config: str,
    *,
    hcm_extra: str = "",
    direction: str = "",
) -> str:
    """A listener: HTTP connection manager with `route_config`, router; `tls` its socket.
    `hcm_extra` adds lines to the connection manager (indented 10, e.g. `tracing`),
    `direction` sets the listener's traffic_direction (INBOUND, OUTBOUND)."""
    traffic = f"    traffic_direction: {direction}\n" if direction else ""
    return f"""  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
{traffic}    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: {name}
          codec_type: {codec}
          route_config:
{indent(route_config, 12)}{hcm_extra}          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {ROUTER}}}
{tls}"""


def envoy_listener(
    name: str,
    port: int,
    cluster: str,
    codec: str,
    tls: str,
    *,
    hcm_extra: str = "",
    direction: str = "",
) -> str:
    """A listener that sends every request to `cluster` (`hcm_extra`, `direction`: as
    envoy_hcm_listener's)."""
    route = envoy_route_all(cluster)
    return envoy_hcm_listener(
        name, port, codec, tls, route, hcm_extra=hcm_extra, direction=direction
    )


def envoy_cluster(
    name: str, ports: int | list[int], extra: str = "", *, lb_policy: str = "ROUND_ROBIN"
) -> str:
    """A static cluster of 127.0.0.1 at `ports`; `extra` adds to it (TLS, limits)."""
    endpoints = "".join(
        f"""        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
"""
        for port in ([ports] if isinstance(ports, int) else ports)
    )
    return f"""  - name: {name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: {lb_policy}
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
{endpoints}{extra}"""


def envoy_downstream_mtls(ident: Identity, root: Path) -> str:
    """A listener's mTLS: TLS 1.3, client certificate required, ALPN h2 and http/1.1."""
    return f"""      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_SOCKETS}.DownstreamTlsContext
          require_client_certificate: true
{envoy_tls_common(ident, root, ["h2", "http/1.1"], 10)}"""


def envoy_upstream_mtls(ident: Identity, root: Path) -> str:
    """A cluster's HTTP/2 over mTLS, presenting ``ident``, checking the server is payment."""
    common = envoy_tls_common(ident, root, ["h2"], 8)
    common += f"""            match_typed_subject_alt_names:
            - san_type: URI
              matcher: {{exact: "{SERVER_ID}"}}
"""
    return f"""    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": {HTTP_OPTIONS}
        explicit_http_config: {{http2_protocol_options: {{}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": {TLS_SOCKETS}.UpstreamTlsContext
{common}"""


def envoy_bootstrap(tmp: Path, port: int, backend: int) -> Path:
    """One hop: listener -> HTTP connection manager -> router -> cluster of the backend."""
    conf = tmp / "envoy.yaml"
    conf.write_text(
        envoy_static(
            [envoy_listener("web", port, "backend", "HTTP1", "")],
            [envoy_cluster("backend", backend)],
        )
    )
    return conf


def envoy_runtime(values: dict[str, int]) -> str:
    """A layered_runtime with one static layer of `values` (runtime keys)."""
    lines = "".join(f"      {key}: {value}\n" for key, value in values.items())
    return f"layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n{lines}"


def envoy_otel_tracing(uri: str, cluster: str, service: str, percent: float) -> str:
    """A connection manager's `tracing`: the OpenTelemetry tracer exporting OTLP/HTTP
    (protobuf) to `uri` through `cluster`, sampling `percent` of new traces."""
    text = f"""tracing:
  random_sampling: {{value: {percent:g}}}
  provider:
    name: envoy.tracers.opentelemetry
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
      service_name: {service}
      http_service:
        http_uri: {{uri: "{uri}", cluster: {cluster}, timeout: 5s}}
"""
    return indent(text, 10)
