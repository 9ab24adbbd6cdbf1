"""Raw TCP through a tcp listener of a real `meshpy proxy run`."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

from tests.integration.proxyproc import proxy_config


def _echo_round_trip(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_tcp_bytes_are_relayed_both_ways(tcp_echo, start_proxy) -> None:
    proxy = start_proxy(proxy_config([tcp_echo.address], protocol="tcp"))
    payload = os.urandom(256 * 1024)
    assert _echo_round_trip(proxy.host_port(), payload) == payload


def test_tcp_many_connections(tcp_echo, start_proxy) -> None:
    proxy = start_proxy(proxy_config([tcp_echo.address], protocol="tcp"))
    payloads = [os.urandom(1000 + i) for i in range(20)]
    with ThreadPoolExecutor(5) as pool:
        echoed = list(pool.map(lambda p: _echo_round_trip(proxy.host_port(), p), payloads))
    assert echoed == payloads


def test_tcp_interactive_exchange(tcp_echo, start_proxy) -> None:
    proxy = start_proxy(proxy_config([tcp_echo.address], protocol="tcp"))
    with socket.create_connection(proxy.host_port(), timeout=5) as sock:
        for i in range(5):
            message = b"ping %d\n" % i
            sock.sendall(message)
            received = b""
            while len(received) < len(message):
                received += sock.recv(100)
            assert received == message
