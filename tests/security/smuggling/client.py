"""The client side: one case and its follow-up on a fresh connection to the proxy."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tests.security.smuggling.model import CRLF, Case
from tests.security.smuggling.parsing import decode_chunked

CONNECT_TIMEOUT_S = 3.0
CASE_DEADLINE_S = 3.0
"""How long a case may take; only a proxy that neither answers nor closes runs into it."""
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: .*)?")


@dataclass(frozen=True)
class Exchange:
    """What the proxy answered to a case on its connection."""

    statuses: tuple[int, ...]
    """Final (non-1xx) response statuses, in order."""
    closed: bool
    """The proxy closed the connection (FIN or RST) before the deadline."""
    received: bytes


def parse_responses(data: bytes, methods: Sequence[str]) -> tuple[int, ...]:
    """Statuses of the final responses in ``data``; ``methods`` are those of the requests
    they answer, in order (a response to HEAD has no body)."""
    statuses: list[int] = []
    pos = 0
    while (end := data.find(b"\r\n\r\n", pos)) >= 0:
        lines = data[pos:end].split(CRLF)
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            break
        status = int(match[1])
        pos = end + 4
        if status < 200:
            continue
        fields = dict(line.lower().split(b":", 1) for line in lines[1:] if b":" in line)
        method = methods[len(statuses)] if len(statuses) < len(methods) else "GET"
        statuses.append(status)
        if method == "HEAD" or status in (204, 304):
            continue
        if b"chunked" in fields.get(b"transfer-encoding", b""):
            decoded = decode_chunked(data[pos:])
            if not isinstance(decoded, tuple):
                break
            pos += decoded[2]
        elif b"content-length" in fields:
            pos += int(fields[b"content-length"].strip())
        else:
            break
    return tuple(statuses)


def run_case(address: tuple[str, int], case: Case, deadline_s: float = CASE_DEADLINE_S) -> Exchange:
    """Send a case and its follow-up on a fresh connection; read until the proxy closes it."""
    received = bytearray()
    closed = False
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The proxy may close before it has read everything: then read what it said.
        with contextlib.suppress(OSError):
            sock.sendall(case.payload)
        deadline = time.monotonic() + deadline_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            received += data
    statuses = parse_responses(bytes(received), (case.method, "GET"))
    return Exchange(statuses, closed, bytes(received))
