"""A real Prometheus process that discovers a control plane's sidecars, for tests."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

PROMETHEUS = Path("/usr/bin/prometheus")
"""Debian's prometheus package (``make system-deps`` installs it)."""

READY_TIMEOUT_S = 20.0


@dataclass
class PrometheusProcess:
    """One Prometheus this test started; ``stop()`` ends it by its PID."""

    url: str
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def log(self) -> str:
        """Everything Prometheus logged so far."""
        return self.log_path.read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; fails on an error answer."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        assert answer.status_code == 200, answer.text
        assert body["status"] == "success", answer.text
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit; only this PID is signalled."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config(sd_url: str, credentials_file: Path) -> dict[str, Any]:
    """Scrape every second what ``sd_url`` lists, asking it every second with the token in
    ``credentials_file``."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "meshpy",
                "http_sd_configs": [
                    {
                        "url": sd_url,
                        "refresh_interval": "1s",
                        # Without the type, Prometheus sends the token with no scheme
                        # (prometheus/prometheus#12762).
                        "authorization": {
                            "type": "Bearer",
                            "credentials_file": str(credentials_file),
                        },
                    }
                ],
            }
        ],
    }


def start(tmp: Path, sd_url: str, credentials_file: Path) -> PrometheusProcess:
    """Start Prometheus on a free loopback port with its config and storage in ``tmp``;
    returns once it is ready."""
    config_path = tmp / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config(sd_url, credentials_file)))
    url = f"http://127.0.0.1:{_free_port()}"
    log_path = tmp / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address={url.removeprefix('http://')}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    prometheus = PrometheusProcess(url, log_path, proc)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {proc.returncode}:\n{prometheus.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return prometheus
        if time.monotonic() > deadline:
            prometheus.stop()
            raise AssertionError(f"prometheus not ready in {READY_TIMEOUT_S}s:\n{prometheus.log()}")
        time.sleep(0.1)
