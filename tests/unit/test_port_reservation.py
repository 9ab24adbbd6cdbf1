"""A reserved port is kept from other processes, yet the proxy core can listen on it."""

from __future__ import annotations

import errno
import json
import socket

import pytest

from meshpy import _core
from meshpy.sidecar.runner import PortReservation


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
