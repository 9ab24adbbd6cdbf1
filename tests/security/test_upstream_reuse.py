"""Upstream HTTP/1 connections are reused only after a whole exchange: an early response to an
unfinished upload never makes another client wait; bodies of GET are forwarded re-framed;
a client's broken or stalled body is the client's fault, not the endpoint's."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.integration.backends import start_http_backend
from tests.integration.proxyproc import ProxyProcess, proxy_config, spawn, wait_ready

IO_TIMEOUT_S = 10.0


@dataclass
class Received:
    """One request head as the backend read it, and the connection it came on."""

    conn: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class EarlyBackend:
    """An HTTP/1.1 backend that answers 200 as soon as it has a request head, before reading
    any body (as an upstream refusing an upload with 401 or 413 does), then reads and records
    the body by its framing. It records every head with the id of its connection, and the ids
    of connections the proxy closed."""

    sock: socket.socket
    received: list[Received] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def requests_to(self, target: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.target == target]

    def serve(self) -> None:
        conn_id = 0
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn_id += 1
            threading.Thread(target=self._conn, args=(conn, conn_id), daemon=True).start()

    def _conn(self, conn: socket.socket, conn_id: int) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                record = Received(conn_id, method, target, headers, b"")
                with self.lock:
                    self.received.append(record)
                answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
                conn.sendall(answer if method == "HEAD" else answer + b"ok")
                record.body = read_body(reader, headers)
        except (OSError, ValueError):
            pass
        finally:
            with self.lock:
                self.closed.add(conn_id)
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()


def read_body(reader: socket.SocketIO | object, headers: dict[str, str]) -> bytes:
    """The body after a head, by its Content-Length or chunked framing."""
    read = reader.read  # type: ignore[attr-defined]
    readline = reader.readline  # type: ignore[attr-defined]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while (size := int(readline().split(b";")[0], 16)) > 0:
            body += read(size)
            readline()
        while readline() not in (b"\r\n", b""):
            pass
        return body
    length = int(headers.get("content-length", "0"))
    return read(length) if length else b""


@pytest.fixture
def early_backend() -> Iterator[EarlyBackend]:
    sock = socket.create_server(("127.0.0.1", 0))
    backend = EarlyBackend(sock)
    threading.Thread(target=backend.serve, daemon=True).start()
    yield backend
    backend.close()


@pytest.fixture
def reuse_proxy(tmp_path, early_backend: EarlyBackend) -> Iterator[ProxyProcess]:
    config = proxy_config(
        [early_backend.address],
        listener={"timeouts": {"body_progress": "2s"}},
        cluster={"protocol": "http1"},
    )
    proxy = wait_ready(spawn(tmp_path, config))
    yield proxy
    proxy.stop()


def connect(proxy: ProxyProcess) -> socket.socket:
    sock = socket.create_connection(proxy.host_port(), timeout=IO_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and Content-Length body of one response."""
    reader = sock.makefile("rb")
    status = int(reader.readline().split(b" ")[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return status, headers, body


def timed_get(proxy: ProxyProcess, path: str) -> float:
    """Seconds a fresh client waits for the answer to ``GET path``."""
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
        status, _, _ = read_response(sock)
        elapsed = time.perf_counter() - started
    assert status == 200
    return elapsed


def wait_until(check, timeout: float = IO_TIMEOUT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_an_early_answer_to_a_stalled_upload_blocks_no_other_client(
    reuse_proxy: ProxyProcess, early_backend: EarlyBackend
) -> None:
    # Warm the pool, so that the upload takes a pooled connection: the case that used to
    # put it back while its body was still arriving.
    timed_get(reuse_proxy, "/warm")
    with connect(reuse_proxy) as uploader:
        uploader.sendall(
            b"POST /upload HTTP/1.1\r\nHost: web\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
        )
        status, _, _ = read_response(uploader)
        assert status == 200
        # The upload stalls with 990 bytes to go; other clients must not wait for it.
        waits = [timed_get(reuse_proxy, f"/b{i}") for i in range(5)]
        print(f"GET while an upload stalls: slowest {max(waits) * 1000:.1f} ms")
        assert max(waits) < 1.0, waits
        (upload,) = early_backend.requests_to("/upload")
        for i in range(5):
            (other,) = early_backend.requests_to(f"/b{i}")
            assert other.conn != upload.conn
        # The upload ends: its connection is closed, not pooled for the next request.
        uploader.sendall(b"x" * 990)
        wait_until(lambda: upload.conn in early_backend.closed)
        assert upload.body == b"x" * 1000
    timed_get(reuse_proxy, "/after")
    (after,) = early_backend.requests_to("/after")
    assert after.conn != upload.conn


def test_connections_whose_exchange_completed_are_reused(
    reuse_proxy: ProxyProcess, early_backend: EarlyBackend
) -> None:
    with connect(reuse_proxy) as client:
        for i in range(5):
            body = f"{i:05d}".encode()
            client.sendall(
                f"POST /r{i} HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\n".encode() + body
            )
            assert read_response(client)[0] == 200
            # The next request may take the connection only once this body is read whole.
            wait_until(lambda i=i: bool(early_backend.requests_to(f"/r{i}")[0].body))
    conns = {early_backend.requests_to(f"/r{i}")[0].conn for i in range(5)}
    assert len(conns) == 1, "a completed exchange leaves its connection reusable"


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "OPTIONS"])
def test_a_chunked_body_on_a_bodyless_method_is_forwarded_rechunked(
    reuse_proxy: ProxyProcess, early_backend: EarlyBackend, method: str
) -> None:
    target = f"/{method.lower()}-body"
    with connect(reuse_proxy) as client:
        head = f"{method} {target} HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"
        client.sendall(head.encode() + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        reader = client.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 200")
    wait_until(lambda: any(r.body for r in early_backend.requests_to(target)))
    (seen,) = early_backend.requests_to(target)
    assert seen.headers.get("transfer-encoding") == "chunked"
    assert seen.body == b"hello world"


def test_a_malformed_chunked_body_is_the_clients_fault(tmp_path, early_backend) -> None:
    """400 client_body, not 502, and no outlier ejection of the endpoint that saw it."""
    config = proxy_config(
        [early_backend.address],
        cluster={
            "protocol": "http1",
            "outlier_detection": {"consecutive_5xx": 1, "consecutive_gateway_errors": 1},
        },
    )
    proxy = wait_ready(spawn(tmp_path, config))
    try:
        for _ in range(3):
            with connect(proxy) as client:
                client.sendall(
                    b"POST /bad HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"zz\r\nhello\r\n0\r\n\r\n"
                )
                status, headers, _ = read_response(client)
            # The backend answers before it reads the body: its 200 may win the race.
            assert status in (200, 400), status
            if status == 400:
                assert headers["x-meshpy-error"] == "client_body"
        assert timed_get(proxy, "/still-served") < IO_TIMEOUT_S
        found = ejections(proxy)
        assert found
        assert all(line.endswith(" 0") for line in found), found
    finally:
        proxy.stop()


def test_a_stalled_upload_gets_408_after_body_progress(
    reuse_proxy: ProxyProcess, early_backend: EarlyBackend
) -> None:
    # An upstream that waits for the body: the early backend's answer comes first, so
    # use a fresh target and check the body is abandoned and the connection closed.
    with connect(reuse_proxy) as client:
        client.sendall(b"POST /stall HTTP/1.1\r\nHost: web\r\nContent-Length: 100\r\n\r\nabc")
        assert read_response(client)[0] == 200
        started = time.monotonic()
        client.settimeout(IO_TIMEOUT_S)
        # body_progress is 2 s: the proxy gives up on the body and closes the client.
        assert client.recv(1024) == b""
        waited = time.monotonic() - started
    assert 1.5 < waited < 6.0, waited
    (stalled,) = early_backend.requests_to("/stall")
    wait_until(lambda: stalled.conn in early_backend.closed)


def ejections(proxy: ProxyProcess) -> list[str]:
    """The proxy's ``meshpy_outlier_ejections_total`` lines."""
    with socket.create_connection(tuple_addr(proxy.addresses["admin"]), timeout=IO_TIMEOUT_S) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        metrics = b""
        while chunk := s.recv(65536):
            metrics += chunk
    return [
        line
        for line in metrics.decode().splitlines()
        if line.startswith("meshpy_outlier_ejections_total")
    ]


def test_a_slow_upload_that_times_out_does_not_count_against_the_endpoint(tmp_path) -> None:
    """504 for the request, but the endpoint that waited for the body is not ejected."""
    backend = start_http_backend("reads-first")  # reads the whole body before answering
    config = proxy_config(
        [backend.address],
        listener={"timeouts": {"request": "1s"}},
        cluster={"protocol": "http1", "outlier_detection": {"consecutive_5xx": 1}},
    )
    proxy = wait_ready(spawn(tmp_path, config))
    try:
        for _ in range(3):
            with connect(proxy) as client:
                client.sendall(b"POST /slow HTTP/1.1\r\nHost: web\r\nContent-Length: 100\r\n\r\nab")
                status, headers, _ = read_response(client)
            assert status == 504
            assert headers["x-meshpy-error"] == "request_timeout"
        found = ejections(proxy)
        assert found
        assert all(line.endswith(" 0") for line in found), found
        assert timed_get(proxy, "/still-served") < IO_TIMEOUT_S
    finally:
        proxy.stop()
        backend.close()


def tuple_addr(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
