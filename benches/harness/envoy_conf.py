"""Envoy's static bootstrap in pieces (listeners, clusters), and its command line."""

from __future__ import annotations

from pathlib import Path

HCM = (
    "type.googleapis.com/envoy.extensions.filters.network"
    ".http_connection_manager.v3.HttpConnectionManager"
)
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FLAGS = ["--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"]


def envoy_argv(envoy: str, conf: Path) -> list[str]:
    """Envoy with one worker thread, no hot restart, warnings only."""
    return [envoy, "-c", str(conf), *FLAGS]


def envoy_static(listeners: list[str], clusters: list[str]) -> str:
    """A bootstrap of static listeners and clusters."""
    return (
        "static_resources:\n  listeners:\n"
        + "".join(listeners)
        + "  clusters:\n"
        + "".join(clusters)
    )


def indent(text: str, spaces: int) -> str:
    """`text` with every line indented by `spaces`."""
    return "".join(" " * spaces + line + "\n" for line in text.splitlines())


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


def envoy_hcm_listener(name: str, port: int, codec: str, tls: str, route_config: str) -> str:
    """A listener: HTTP connection manager with `route_config`, router; `tls` its socket."""
    return f"""  - name: {name}
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: {name}
          codec_type: {codec}
          route_config:
{indent(route_config, 12)}          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {ROUTER}}}
{tls}"""


def envoy_listener(name: str, port: int, cluster: str, codec: str, tls: str) -> str:
    """A listener that sends every request to `cluster`."""
    return envoy_hcm_listener(name, port, codec, tls, envoy_route_all(cluster))


def envoy_cluster(name: str, port: int, extra: str = "") -> str:
    """A static cluster of 127.0.0.1:`port`, round robin; `extra` adds to it."""
    return f"""  - name: {name}
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
{extra}"""


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
