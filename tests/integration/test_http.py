"""HTTP through a real `meshpy proxy run`: HTTP/1.1, h2c, balancing, errors, limits, headers."""

from __future__ import annotations

import http.client
import re
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.backends import closed_port
from tests.integration.proxyproc import proxy_config


def test_http1_request_and_response_pass_through(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]))
    with httpx.Client(timeout=5) as client:
        got = client.get(proxy.url("/hello?x=1"))
        posted = client.post(proxy.url("/upload"), content=b"x" * 100_000)
    assert got.status_code == 200
    assert got.http_version == "HTTP/1.1"
    assert got.json() == {"backend": "b1", "method": "GET", "path": "/hello?x=1", "body_len": 0}
    assert got.headers["x-backend"] == "b1"
    assert posted.status_code == 200
    assert posted.json()["body_len"] == 100_000
    assert backend.seen[1].body == b"x" * 100_000


def test_h2c_prior_knowledge_is_served(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]))
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda i: client.get(proxy.url(f"/h2/{i}")), range(20)))
        posted = client.post(proxy.url("/h2post"), content=b"y" * 50_000)
    assert {r.http_version for r in responses} == {"HTTP/2"}
    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(r.json()["path"] for r in responses) == sorted(f"/h2/{i}" for i in range(20))
    assert posted.json()["body_len"] == 50_000
    assert backend.count == 21
    assert backend.seen[0].header("host") == [proxy.addresses["web"]], ":authority became Host"


def test_round_robin_spreads_evenly(http_backend, start_proxy) -> None:
    backends = [http_backend(f"b{i}") for i in range(3)]
    proxy = start_proxy(proxy_config([b.address for b in backends]))
    with httpx.Client(timeout=5) as client:
        names = [client.get(proxy.url("/rr")).json()["backend"] for _ in range(30)]
    assert Counter(names) == {"b0": 10, "b1": 10, "b2": 10}


def test_least_request_uses_every_endpoint(http_backend, start_proxy) -> None:
    backends = [http_backend(f"b{i}") for i in range(2)]
    proxy = start_proxy(
        proxy_config([b.address for b in backends], cluster={"lb": "least_request"})
    )
    with httpx.Client(timeout=5) as client:
        statuses = [client.get(proxy.url("/lr")).status_code for _ in range(40)]
    assert statuses == [200] * 40
    assert all(b.count > 0 for b in backends), [b.count for b in backends]


def test_upstream_down_gives_502(start_proxy) -> None:
    proxy = start_proxy(proxy_config([closed_port()]))
    response = httpx.get(proxy.url("/down"), timeout=10)
    assert response.status_code == 502


def test_slow_upstream_gives_504_after_the_request_timeout(http_backend, start_proxy) -> None:
    backend = http_backend("slow")
    config = proxy_config([backend.address], listener={"timeouts": {"request": "300ms"}})
    proxy = start_proxy(config)
    response = httpx.get(proxy.url("/slow?s=1.5"), timeout=5)
    assert response.status_code == 504
    assert response.elapsed.total_seconds() < 1.2


def test_no_endpoints_gives_503(start_proxy) -> None:
    proxy = start_proxy(proxy_config([]))
    response = httpx.get(proxy.url("/none"), timeout=5)
    assert response.status_code == 503


def _raw_request(address: tuple[str, int], head: bytes) -> bytes:
    """Send a raw request head and return everything read until the peer closes or 2 s pass."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(head)
        sock.settimeout(2)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return data


def test_oversize_headers_get_431_and_the_proxy_keeps_serving(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    limits = {"max_header_bytes": 4096, "max_headers": 20}
    proxy = start_proxy(proxy_config([backend.address], listener={"limits": limits}))
    address = proxy.host_port()

    big = _raw_request(address, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 431"), big[:100]

    many = b"".join(b"X-H%d: v\r\n" % i for i in range(40))
    crowded = _raw_request(address, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert crowded.startswith(b"HTTP/1.1 431"), crowded[:100]

    assert backend.count == 0
    assert httpx.get(proxy.url("/after"), timeout=5).status_code == 200


def test_hop_by_hop_headers_stay_on_their_hop(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]))
    conn = http.client.HTTPConnection(*proxy.host_port(), timeout=5)
    conn.putrequest("GET", "/hop", skip_accept_encoding=True)
    for name, value in [
        ("Connection", "keep-alive, X-Secret"),
        ("X-Secret", "hop only"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "gzip"),
        ("Upgrade", "websocket"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-End-To-End", "kept"),
    ]:
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 200

    seen = backend.seen[0]
    names = {name.lower() for name, _ in seen.headers}
    for hop in ("connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert hop not in names, f"{hop} reached the backend: {seen.headers}"
    assert seen.header("x-end-to-end") == ["kept"]
    assert seen.header("x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    assert seen.header("via") == ["1.1 meshpy"]
    assert re.fullmatch(r"[0-9a-f]{32}", seen.header("x-request-id")[0])


def test_a_given_request_id_is_kept(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]))
    httpx.get(proxy.url("/id"), headers={"x-request-id": "abc-123"}, timeout=5)
    assert backend.seen[0].header("x-request-id") == ["abc-123"]


def test_proxy_header_modes(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    fwd = start_proxy(
        proxy_config([backend.address], listener={"proxy_header": "forwarded"}), name="fwd.yaml"
    )
    none = start_proxy(
        proxy_config([backend.address], listener={"proxy_header": "none"}), name="none.yaml"
    )
    httpx.get(fwd.url("/fwd"), timeout=5)
    httpx.get(none.url("/none"), timeout=5)
    by_forwarded, by_none = backend.seen
    assert by_forwarded.header("forwarded") == ["for=127.0.0.1;proto=http"]
    assert by_forwarded.header("via") == []
    assert by_none.header("forwarded") == []
    assert by_none.header("via") == []
    assert by_none.header("x-forwarded-for") == ["127.0.0.1"]


def test_http2_upstream(h2c_backend, start_proxy) -> None:
    backend = h2c_backend("h2")
    proxy = start_proxy(proxy_config([backend.address], cluster={"protocol": "http2"}))
    with httpx.Client(timeout=5) as client:
        got = client.get(proxy.url("/up2?x=1"))
        posted = client.post(proxy.url("/up2post"), content=b"z" * 70_000)
    assert got.status_code == 200, got.text
    assert got.json() == {"backend": "h2", "path": "/up2?x=1", "body_len": 0}
    assert posted.json()["body_len"] == 70_000
    seen = backend.seen[0]
    assert seen.header(":authority") == [proxy.addresses["web"]]
    assert seen.header("via") == ["1.1 meshpy"]
    assert seen.header("host") == []
