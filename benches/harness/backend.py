"""The backend every proxy forwards to: nginx, one worker, a fixed `BODY` for every path."""

from __future__ import annotations

from pathlib import Path

BODY = "hello\n"


def backend_nginx_conf(tmp: Path, port: int, extra_locations: str = "") -> Path:
    """The backend: `BODY` for every path, unless `extra_locations` (nginx) say otherwise."""
    conf = tmp / "backend.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {tmp}/backend.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{BODY.strip()}\\n";
        }}{extra_locations}
    }}
}}
""")
    return conf
