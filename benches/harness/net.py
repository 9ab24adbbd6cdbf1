"""Local ports and plain HTTP GETs."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fetch(
    url: str, headers: dict[str, str] | None = None, timeout: float = 1.0
) -> tuple[int | None, str, str]:
    """(status, body, why) of GET url; status None, and why the error, if no response came."""
    try:
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace"), ""
    except urllib.error.HTTPError as err:
        return err.code, "", ""
    except (OSError, ValueError) as err:
        return None, "", str(err)


def http_get(url: str, timeout: float = 1.0) -> tuple[int | None, str]:
    """(status, body) of GET url; status None if no HTTP response came back."""
    status, body, _ = fetch(url, timeout=timeout)
    return status, body
