"""Where a sidecar's proxy sends its spans: the control plane's trace receiver, and the
collector that ``OTEL_EXPORTER_OTLP_*`` names, added to every snapshot that has tracing.

The control plane's snapshot says whether and how much to trace; only the sidecar knows
the control plane's address as it reaches it, its own token, and its environment.
``MESHPY_TRACES_TO_CONTROL_PLANE=false`` sends spans only to the user's collector.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from meshpy.sidecar.configwatch import SnapshotTarget

if TYPE_CHECKING:  # the sidecar imports only the standard library and the core
    from meshpy import proxyconfig

__all__ = ["WithExports", "control_plane_export", "env_exports", "exports", "with_exports"]

log = logging.getLogger("meshpy.sidecar.tracing")

MAX_EXPORTS = 4
"""As many receivers as a proxy sends to (the config's limit)."""


def control_plane_export(base_url: str, token: str) -> proxyconfig.OtlpExport:
    """The control plane's OTLP receiver, as this sidecar reaches it, with its token."""
    return {
        "endpoint": f"{base_url.rstrip('/')}/v1/traces",
        "headers": {"authorization": f"Bearer {token}"},
    }


_NO = ("0", "false", "no", "off")


def exports(base_url: str, token: str, env: Mapping[str, str]) -> list[proxyconfig.OtlpExport]:
    """Every receiver of this sidecar's spans: the control plane's, unless
    ``MESHPY_TRACES_TO_CONTROL_PLANE`` says no, then the collector of ``env``."""
    own = env_exports(env)
    if env.get("MESHPY_TRACES_TO_CONTROL_PLANE", "").strip().lower() in _NO:
        if not own:
            log.warning("MESHPY_TRACES_TO_CONTROL_PLANE is off and no collector is named: no spans")
        return own
    return [control_plane_export(base_url, token), *own]


def env_exports(env: Mapping[str, str]) -> list[proxyconfig.OtlpExport]:
    """The collector the OpenTelemetry variables name, as OpenTelemetry SDKs read them:
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as it is, else ``OTEL_EXPORTER_OTLP_ENDPOINT``
    with ``/v1/traces`` appended; headers from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, else
    ``OTEL_EXPORTER_OTLP_HEADERS`` (``key=value,...``, values URL-encoded); for ``https``,
    the PEM file of ``OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE``, else
    ``OTEL_EXPORTER_OTLP_CERTIFICATE``, trusted instead of the system's roots. Another
    scheme, or a certificate file that can't be read, leaves the collector out, with a
    warning."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not base:
            return []
        endpoint = f"{base.rstrip('/')}/v1/traces"
    scheme = urlsplit(endpoint).scheme
    if scheme not in ("http", "https"):
        log.warning("traces are not sent to %s: OTLP goes over http:// or https://", endpoint)
        return []
    headers_text = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get(
        "OTEL_EXPORTER_OTLP_HEADERS", ""
    )
    export: proxyconfig.OtlpExport = {"endpoint": endpoint, "headers": parse_headers(headers_text)}
    ca_file = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
        or env.get("OTEL_EXPORTER_OTLP_CERTIFICATE", "")
    ).strip()
    if ca_file and scheme == "https":
        try:
            export["ca"] = Path(ca_file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as err:
            log.warning("traces are not sent to %s: its certificate file: %s", endpoint, err)
            return []
    return [export]


def parse_headers(text: str) -> dict[str, str]:
    """``key=value,key2=value2`` (the OTLP exporter's header list) as a dict; entries
    without ``=`` are skipped."""
    headers: dict[str, str] = {}
    for entry in text.split(","):
        key, sep, value = entry.partition("=")
        if sep and key.strip():
            headers[unquote(key.strip()).lower()] = unquote(value.strip())
    return headers


def with_exports(snapshot_json: str, exports: list[proxyconfig.OtlpExport]) -> str:
    """``snapshot_json`` with ``exports`` added to its tracing section (after the ones it
    names, duplicates and those past the limit left out); unchanged without tracing."""
    if not exports:
        return snapshot_json
    snapshot = json.loads(snapshot_json)
    tracing = snapshot.get("tracing") if isinstance(snapshot, dict) else None
    if not isinstance(tracing, dict):
        return snapshot_json
    merged: list[proxyconfig.OtlpExport] = list(tracing.get("export") or [])
    for export in exports:
        if len(merged) < MAX_EXPORTS and all(
            e.get("endpoint") != export["endpoint"] for e in merged
        ):
            merged.append(export)
    tracing["export"] = merged
    return json.dumps(snapshot)


@dataclass
class WithExports:
    """A snapshot target that adds this sidecar's trace receivers to each snapshot."""

    target: SnapshotTarget
    exports: list[proxyconfig.OtlpExport]

    def apply(self, snapshot_json: str) -> int:
        """Applies ``snapshot_json`` with the receivers added."""
        return self.target.apply(with_exports(snapshot_json, self.exports))
