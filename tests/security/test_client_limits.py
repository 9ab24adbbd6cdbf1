"""Each slow-client limit of a listener, one connection at a time: the request-head timeout
(apart from the idle one), the send timeout for a client that stops reading, and the
proxy-wide connection budget that refuses new connections and keeps those open."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backends import HttpBackend, start_http_backend
from tests.integration.proxyproc import ProxyProcess, proxy_config, spawn, wait_ready
from tests.security.conftest import FloodBackend
from tests.security.slowclients import server_side_states

IO_TIMEOUT_S = 10.0


@pytest.fixture
def backend() -> Iterator[HttpBackend]:
    started = start_http_backend("limits")
    yield started
    started.close()


def start(tmp_path, config: dict) -> ProxyProcess:  # type: ignore[type-arg]
    return wait_ready(spawn(tmp_path, config))


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=IO_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the proxy closes ``sock`` (reading and discarding what comes)."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def get_ok(address: tuple[str, int], sock: socket.socket | None = None) -> None:
    """One keep-alive GET answered 200 (on ``sock``, or a new connection)."""
    own = sock is None
    sock = sock or connect(address)
    try:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: web\r\n\r\n")
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while (line := reader.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        reader.read(length)
    finally:
        if own:
            sock.close()


def test_a_head_sent_slowly_is_cut_after_request_head_but_idle_clients_are_kept(
    tmp_path, backend: HttpBackend
) -> None:
    config = proxy_config(
        [backend.address], listener={"timeouts": {"request_head": "1s", "idle": "30s"}}
    )
    proxy = start(tmp_path, config)
    try:
        address = proxy.host_port()
        idle = connect(address)
        get_ok(address, idle)  # then idle, keep-alive, well past request_head
        slow = connect(address)
        slow.sendall(b"GET /slow-head HTTP/1.1\r\n")
        started = time.monotonic()
        for i in range(10):  # a header line every 0.3 s: never a whole head
            time.sleep(0.3)
            try:
                slow.sendall(f"X-Drip-{i}: 1\r\n".encode())
            except OSError:
                break
        waited = time.monotonic() - started + closed_after(slow, IO_TIMEOUT_S)
        assert 0.8 < waited < 4.0, waited
        # The idle client waited as long, sending nothing, and is still served.
        get_ok(address, idle)
        idle.close()
        slow.close()
        assert not any(s.path == "/slow-head" for s in backend.seen)
    finally:
        proxy.stop()


def open_connections(proxy: ProxyProcess, listener: str = "web") -> int:
    """``meshpy_connections_open`` of ``listener``, from the admin listener."""
    with connect(proxy.host_port("admin")) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    prefix = f'meshpy_connections_open{{listener="{listener}"}} '
    (line,) = [line for line in text.decode().splitlines() if line.startswith(prefix)]
    return int(float(line.removeprefix(prefix)))


def read_to_end(sock: socket.socket) -> None:
    """Read and discard until the proxy closes ``sock``."""
    while sock.recv(65536):
        pass


def test_a_client_that_stops_reading_is_reset_after_the_send_timeout(
    tmp_path, flood_backend: FloodBackend
) -> None:
    config = proxy_config([flood_backend.address], listener={"timeouts": {"send": "1s"}})
    proxy = start(tmp_path, config)
    try:
        host, port = proxy.host_port()
        with connect((host, port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /big?bytes=33554432 HTTP/1.1\r\nHost: web\r\n\r\n")
            client_port = sock.getsockname()[1]
            started = time.monotonic()
            # Not reading: the proxy's writes block, and a second later it gives up.
            while open_connections(proxy) > 0:
                assert time.monotonic() - started < 8.0, "still open after the send timeout"
                time.sleep(0.1)
            waited = time.monotonic() - started
            # It resets the connection: the megabytes the kernel had queued for this
            # client are dropped with the proxy's socket, not kept in FIN-WAIT-1 while
            # the kernel probes a zero window, and the client learns of it at once.
            proxy_side = server_side_states(Path("/proc/net/tcp").read_text(), port)
            assert client_port not in proxy_side, proxy_side.get(client_port)
            with pytest.raises(ConnectionResetError):
                read_to_end(sock)
        assert waited > 0.9, waited
        get_ok(proxy.host_port())
    finally:
        proxy.stop()


def test_the_proxy_wide_connection_budget_refuses_new_connections_and_keeps_open_ones(
    tmp_path, backend: HttpBackend
) -> None:
    config = proxy_config([backend.address], max_connections=3)
    config["listeners"].append({**config["listeners"][0], "name": "web2"})
    proxy = start(tmp_path, config)
    try:
        first = proxy.host_port("web")
        second = proxy.host_port("web2")
        kept = [connect(first), connect(first), connect(second)]
        for sock in kept:
            get_ok(first, sock)
        for address in (first, second):
            refused = connect(address)
            assert closed_after(refused, IO_TIMEOUT_S) < 2.0
            refused.close()
        for sock in kept:
            get_ok(first, sock)
        kept.pop().close()
        time.sleep(0.2)
        get_ok(second)  # room again once one closed
        for sock in kept:
            sock.close()
    finally:
        proxy.stop()
