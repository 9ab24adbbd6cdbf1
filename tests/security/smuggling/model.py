"""What a smuggling case is, and the helpers that draft a request's bytes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

ID_SLOT = b"@ID@"
"""Stands for a case's id while the case is drafted. It is exactly as wide as the id
(four digits), so lengths and chunk sizes computed on a draft stay right."""

ID_WIDTH = len(ID_SLOT)
CASE_TARGET = b"/case-" + ID_SLOT
ABSOLUTE = b"http://x" + CASE_TARGET
SMUGGLED = b"GET /smuggled-" + ID_SLOT + b" HTTP/1.1\r\nHost: x\r\n\r\n"
"""The request hidden in every case: it reaches the backend only if some part of the case
was framed differently than RFC 9112 says."""

SMUGGLED_PREFIX = "/smuggled"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
"""Methods whose requests rarely carry a body; a proxy must still forward one they carry."""

CRLF = b"\r\n"
HOST = b"Host: x"
LAST_CHUNK = b"0\r\n\r\n"
CL_TE_TAIL = b"5\r\nhello\r\n" + LAST_CHUNK + SMUGGLED
"""A body for Content-Length to cover whole: read as chunked, it ends before SMUGGLED."""

LENGTH = len(SMUGGLED)
"""The length of SMUGGLED: a Content-Length that covers exactly it."""


class Expect(enum.Enum):
    """What RFC 9112 lets a server do with a case."""

    ACCEPT = "accept"  # a valid request: it must be forwarded
    REJECT = "reject"  # an invalid request: 4xx, and the connection closed
    EITHER = "either"  # the RFC lets a server accept it (MAY, SHOULD) or reject it


@dataclass(frozen=True)
class Case:
    """One attack: the raw bytes of a request and what a correct proxy does with them."""

    case_id: str
    category: str
    name: str
    method: str
    """The method the backend must see if the case is forwarded."""
    raw: bytes
    expect: Expect
    bodies: tuple[bytes, ...] = (b"",)
    """Bodies the backend may see if the case is forwarded: the RFC 9112 readings."""
    keep_alive: bool = True
    """Whether the connection stays open after the case is answered 2xx (the follow-up
    request is then answered too); False where the RFC says to close (e.g. CL and TE)."""
    host: str | None = "x"
    """The Host the backend must see if the case is forwarded; None: any single one."""
    reject_statuses: tuple[int, ...] = ()
    """Statuses besides 4xx that count as a rejection (501 for an unknown coding)."""

    @property
    def payload(self) -> bytes:
        """The case, then a benign request on the same connection that asks to close it."""
        return self.raw + follow_request(self.case_id)


def follow_request(case_id: str) -> bytes:
    """The benign request sent after a case, on the same connection."""
    return b"GET /follow-%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % case_id.encode()


def build(
    method: str,
    fields: Sequence[bytes],
    body: bytes = b"",
    *,
    target: bytes = CASE_TARGET,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """A request with CRLF line endings from its parts; fields are raw field lines."""
    lines = [b" ".join((method.encode(), target, version)), *fields]
    return CRLF.join(lines) + CRLF + CRLF + body


def chunk(
    data: bytes,
    *,
    size: bytes | None = None,
    ext: bytes = b"",
    size_end: bytes = CRLF,
    data_end: bytes = CRLF,
) -> bytes:
    """One chunk; the size (lowercase hex of the data's length) and the line ends can be forged."""
    return (b"%x" % len(data) if size is None else size) + ext + size_end + data + data_end


def chunked(data: bytes) -> bytes:
    """A whole chunked body of one chunk and no trailer."""
    return chunk(data) + LAST_CHUNK


def content_length(value: int | bytes) -> bytes:
    """A Content-Length field line."""
    return b"Content-Length: " + (b"%d" % value if isinstance(value, int) else value)


def transfer_encoding(value: bytes) -> bytes:
    """A Transfer-Encoding field line."""
    return b"Transfer-Encoding: " + value


def framed(framing: str) -> tuple[bytes, bytes]:
    """(framing field line, body) whose body is the smuggled request."""
    if framing == "length":
        return content_length(LENGTH), SMUGGLED
    return transfer_encoding(b"chunked"), chunked(SMUGGLED)


@dataclass(frozen=True)
class Draft:
    """A case before its id is known (the bytes hold ID_SLOT)."""

    category: str
    name: str
    method: str
    raw: bytes
    expect: Expect
    bodies: tuple[bytes, ...] = (b"",)
    keep_alive: bool = True
    host: str | None = "x"
    reject_statuses: tuple[int, ...] = ()

    def with_id(self, case_id: str) -> Case:
        """The case, with ID_SLOT replaced by its id everywhere."""
        ident = case_id.encode()
        return Case(
            case_id=case_id,
            category=self.category,
            name=self.name,
            method=self.method,
            raw=self.raw.replace(ID_SLOT, ident),
            expect=self.expect,
            bodies=tuple(body.replace(ID_SLOT, ident) for body in self.bodies),
            keep_alive=self.keep_alive,
            host=self.host,
            reject_statuses=self.reject_statuses,
        )
