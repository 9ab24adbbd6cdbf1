"""A reserved port is kept from other processes, yet the proxy core can listen on it."""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshpy import _core
from meshpy.sidecar.controlplane import ControlPlaneError
from meshpy.sidecar.runner import PortReservation, Sidecar, SidecarOptions
from meshpy.sidecar.supervisor import AppSpec


def test_nobody_else_can_bind_a_reserved_port() -> None:
    reservation = PortReservation("127.0.0.1")
    try:
        with socket.socket() as other, pytest.raises(OSError, match="in use") as refused:
            other.bind(("127.0.0.1", reservation.port))
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        reservation.release()
    with socket.socket() as other:  # released: free again
        other.bind(("127.0.0.1", reservation.port))


def test_the_core_listens_on_a_reserved_port_while_it_is_held() -> None:
    reservation = PortReservation("127.0.0.1")
    proxy = _core.Proxy("{}")
    try:
        address = f"127.0.0.1:{reservation.port}"
        listener = {"name": "in", "address": address, "protocol": "tcp", "cluster": "app"}
        proxy.apply(json.dumps({"listeners": [listener], "clusters": [{"name": "app"}]}))
        assert proxy.start()["in"] == address
        with socket.create_connection(("127.0.0.1", reservation.port), timeout=5):
            pass
        # Listening, the core's socket keeps the port even from sockets with SO_REUSEADDR.
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError, match="in use"):
                other.bind(("127.0.0.1", reservation.port))
    finally:
        proxy.shutdown(0)
        reservation.release()


def test_a_sidecar_holds_the_app_port_it_picks_until_the_app_starts(tmp_path: Path) -> None:
    bound = tmp_path / "bound"
    # An app that binds its PORT without SO_REUSEADDR, as a plain socket does.
    app = (
        "import os, socket, pathlib\n"
        "s = socket.socket()\n"
        "s.bind(('127.0.0.1', int(os.environ['PORT'])))\n"
        f"pathlib.Path({str(bound)!r}).write_text(os.environ['PORT'])\n"
    )

    # A control plane that refuses registration after 1.5 s, while the app starts.
    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(1.5)
            self.send_error(403, "no")

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = SidecarOptions(
        server=f"http://127.0.0.1:{server.server_address[1]}",
        token="t",
        service="web",
        app=AppSpec(command=[sys.executable, "-c", app], restart="never"),
        drain_delay_s=0.0,
    )
    sidecar = Sidecar(options)
    assert sidecar.app_port is not None
    with socket.socket() as other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", sidecar.app_port))
    try:
        with pytest.raises(ControlPlaneError):
            sidecar.start(register_timeout=5.0)
    finally:
        server.shutdown()
        server.server_close()
    # Released before the app started, so the app could bind it.
    assert bound.read_text() == str(sidecar.app_port)
