"""The backend every target forwards to: HELLO, large bodies, request bodies read as they come."""

from __future__ import annotations

import asyncio
import contextlib
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.security.slowclients.common import HELLO, LARGE_BYTES, LARGE_PATH, PROGRAM


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers with lower-case names) of an HTTP/1 request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def large_size(target: str, default: int) -> int | None:
    """The body size asked for by `target` if it is `LARGE_PATH` (``?bytes=N``), else None."""
    path, _, query = target.partition("?")
    if path != LARGE_PATH:
        return None
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "bytes" and value.isdigit():
            return int(value)
    return default


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    """Read and drop a request body as it comes (Content-Length or chunked)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            await reader.readexactly(size + 2)
    remaining = int(headers.get("content-length") or 0)
    while remaining:
        chunk = await reader.read(min(remaining, 65536))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(chunk)


async def serve_backend(port: int, large_bytes: int) -> None:
    """HTTP/1.1 with keep-alive on 127.0.0.1:`port`: `HELLO` to every request (bodies are
    read as they arrive), a body of zeros to `LARGE_PATH`, written as fast as the reader
    takes it (at most 64 KiB queued per connection)."""
    piece = bytes(16384)
    small = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        + f"content-length: {len(HELLO)}\r\n\r\n".encode()
        + HELLO
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(high=65536)
        ended = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)
        with contextlib.suppress(*ended):
            while True:
                method, target, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
                await read_body(reader, headers)
                size = large_size(target, large_bytes)
                if size is None:
                    writer.write(small)
                else:
                    head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                    writer.write(f"{head}content-length: {size}\r\n\r\n".encode())
                    while size > 0 and method != "HEAD":
                        writer.write(piece[: min(size, len(piece))])
                        size -= len(piece)
                        await writer.drain()
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096, limit=65536)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def backend_argv(port: int, large_bytes: int = LARGE_BYTES) -> list[str]:
    """The command line of the backend, run with this interpreter."""
    return [sys.executable, str(PROGRAM), "backend", "--port", str(port),
            "--large-bytes", str(large_bytes)]  # fmt: skip


def start_backend(
    large_bytes: int = LARGE_BYTES, timeout: float = 15.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the backend on a free loopback port; (its process, ``127.0.0.1:port``) once it
    listens. The caller stops it by its PID."""
    proc, address = spawn_listening(backend_argv(0, large_bytes), "the backend", timeout)
    wait_http_hello(f"http://{address}/", proc, timeout)
    return proc, address


def spawn_listening(
    argv: list[str], what: str, timeout: float = 15.0, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Run `argv`, a server that prints ``listening on <address>`` first; (its process, the
    address) once it has. Raises, with the process stopped, if it does not within
    `timeout` s."""
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("listening on "):
        stop_process(proc)
        msg = f"{what} did not start within {timeout:g} s: {line!r}"
        raise RuntimeError(msg)
    return proc, line.split()[-1]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit; only this PID is signalled."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()


def wait_http_hello(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until GET `url` answers 200 with `HELLO`; raise if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"process {proc.pid} exited with {proc.returncode} before {url} answered"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200 and resp.read() == HELLO:
                    return
                last = f"status {resp.status}"
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        time.sleep(0.1)
    msg = f"{url} did not answer 200 {HELLO!r} within {timeout:g} s ({last})"
    raise RuntimeError(msg)
