"""A raw-socket HTTP/1.1 backend that records every request the proxy forwards to it."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field

from tests.security.smuggling.model import ID_WIDTH
from tests.security.smuggling.parsing import Fields, parse_head, parse_request

BACKEND_IDLE_S = 10.0
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_CASE_REF = re.compile(rf"/(case|follow|smuggled)-([0-9]{{{ID_WIDTH}}})")


@dataclass(frozen=True)
class Seen:
    """One request as the backend received it."""

    connection: int
    method: str
    target: str
    fields: Fields
    body: bytes
    framing: str
    violations: tuple[str, ...]
    complete: bool
    """False when the connection ended in the middle of the request."""

    @property
    def host(self) -> str | None:
        """The Host value, if exactly one was sent."""
        hosts = [value for name, value in self.fields if name.lower() == "host"]
        return hosts[0] if len(hosts) == 1 else None

    @property
    def ref(self) -> tuple[str, str] | None:
        """("case" | "follow" | "smuggled", case id) named by the target; failing that, the
        case whose smuggled request is in the body (a proxy that rewrote the target)."""
        match = _CASE_REF.search(self.target)
        if match is None:
            match = _CASE_REF.search(self.body.decode("latin-1"))
            return ("case", match[2]) if match else None
        return match[1], match[2]


@dataclass
class StrictBackend:
    """A raw-socket HTTP/1.1 server on 127.0.0.1 that records every request it receives,
    answers each valid one 200, and a request it must not have been sent 400 and close."""

    listener: socket.socket = field(repr=False)
    seen: list[Seen] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    connections: list[socket.socket] = field(default_factory=list, repr=False)

    @classmethod
    def start(cls) -> StrictBackend:
        """Listen on 127.0.0.1:0 and serve in daemon threads."""
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        backend = cls(listener)
        threading.Thread(target=backend._accept, name="strict-backend", daemon=True).start()
        return backend

    @property
    def address(self) -> str:
        """The bound ``127.0.0.1:port``."""
        host, port = self.listener.getsockname()[:2]
        return f"{host}:{port}"

    def requests(self) -> list[Seen]:
        """Everything received so far."""
        with self.lock:
            return list(self.seen)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        self.stopping.set()
        self.listener.close()
        with self.lock:
            for conn in self.connections:
                conn.close()

    def _accept(self) -> None:
        number = 0
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            number += 1
            conn.settimeout(BACKEND_IDLE_S)
            with self.lock:
                self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with conn:
            while not self.stopping.is_set():
                parsed = parse_request(buffer)
                if parsed is None:
                    try:
                        received = conn.recv(65536)
                    except OSError:
                        received = b""
                    if not received:
                        self._record_unfinished(buffer, number)
                        return
                    buffer += received
                    continue
                head = parsed.head
                self._record(
                    Seen(
                        number,
                        head.method,
                        head.target,
                        head.fields,
                        parsed.body,
                        parsed.framing,
                        parsed.violations,
                        complete=True,
                    )
                )
                buffer = buffer[parsed.consumed :]
                try:
                    if parsed.violations:
                        conn.sendall(_BAD)
                        return
                    conn.sendall(_OK if head.method == "HEAD" else _OK + b"ok\n")
                except OSError:
                    return

    def _record_unfinished(self, buffer: bytes, number: int) -> None:
        """A connection that ended in the middle of a request: the proxy aborted it."""
        if not buffer:
            return
        head = parse_head(buffer + b"\r\n\r\n") if b"\r\n\r\n" not in buffer else parse_head(buffer)
        if head is None:
            return
        self._record(Seen(number, head.method, head.target, head.fields, b"", "", (), False))
