"""Strict RFC 9112 request parsing: what the backend makes of the bytes it is sent."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tests.security.smuggling.model import CRLF, SMUGGLED_PREFIX

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN = _TCHAR + rb"+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])")
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
# chunk-size is 1*HEXDIG: any number of leading zeros, at most 16 digits that count.
_CHUNK_LINE = re.compile(rb"0*([0-9A-Fa-f]{1,16})" + _CHUNK_EXT)
_FIELD_NAME = re.compile(_TOKEN)
_FIELD_VALUE = re.compile(rb"[\t \x21-\x7e\x80-\xff]*")
_DECIMAL = re.compile(rb"[0-9]{1,15}")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")

MAX_HEAD_BYTES = 128 * 1024
Fields = tuple[tuple[str, str], ...]
FRAMING_FIELDS = frozenset({"content-length", "transfer-encoding"})


@dataclass(frozen=True)
class Head:
    """A request line and field section as received, with every violation found in them."""

    method: str
    target: str
    fields: Fields
    length: int
    """Bytes of the head, blank line included."""
    violations: tuple[str, ...]

    def values(self, name: str) -> list[str]:
        """Every value of field ``name`` (case-insensitive), in order."""
        return [value for key, value in self.fields if key.lower() == name]


@dataclass(frozen=True)
class Parsed:
    """One request as a strict RFC 9112 server reads it."""

    head: Head
    body: bytes
    trailers: Fields
    framing: str
    """"none", "content-length" or "chunked"."""
    violations: tuple[str, ...]
    consumed: int


def _bare_line_break(region: bytes, *, complete: bool) -> str | None:
    """Names a CR or LF that is not part of a CRLF in ``region``. While the head is not
    complete, a CR at the very end may still be followed by its LF."""
    if _BARE_LF.search(region):
        return "bare LF in the head"
    searched = region if complete or not region.endswith(b"\r") else region[:-1]
    if _BARE_CR.search(searched):
        return "bare CR in the head"
    return None


def field_line_violations(line: bytes) -> tuple[str, bytes, list[str]]:
    """(name, value, violations) of one field line, the OWS around its value trimmed."""
    if line[:1] in (b" ", b"\t"):
        return "", line.strip(b" \t"), ["obs-fold or whitespace before a field line"]
    name, colon, value = line.partition(b":")
    violations = []
    if not colon or not name:
        violations.append("field line without a name and colon")
    elif name[-1:] in (b" ", b"\t"):
        violations.append("whitespace before the colon")
    elif not _FIELD_NAME.fullmatch(name):
        violations.append("non-token character in a field name")
    value = value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        violations.append("NUL or control character in a field value")
    return name.decode("latin-1"), value, violations


def parse_head(data: bytes) -> Head | None:
    """The head at the start of ``data``; None while it is incomplete and valid so far."""
    end = data.find(b"\r\n\r\n")
    region = data[:end] if end >= 0 else data
    violations: list[str] = []
    broken = _bare_line_break(region, complete=end >= 0)
    if broken:
        violations.append(broken)
    elif end < 0:
        if len(data) <= MAX_HEAD_BYTES:
            return None
        violations.append("head larger than the limit")
    lines = re.split(rb"\r\n|\r|\n", region)
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        violations.append("malformed request line")
        words = lines[0].split(b" ")
        method = words[0]
        target = words[1] if len(words) > 1 else b""
    else:
        method, target, version = match.groups()
        if version != b"HTTP/1.1":
            violations.append(f"version {version!r}, not HTTP/1.1")
    fields = []
    for line in lines[1:]:
        name, value, line_violations = field_line_violations(line)
        violations.extend(line_violations)
        fields.append((name, value.decode("latin-1")))
    length = end + 4 if end >= 0 else len(data)
    return Head(
        method.decode("latin-1"), target.decode("latin-1"), tuple(fields), length, tuple(violations)
    )


def framing_violations(head: Head) -> list[str]:
    """Violations of the framing and Host rules a proxy must never forward (RFC 9112 §3.2, §6)."""
    violations = []
    lengths = head.values("content-length")
    codings = [
        c.strip(" \t").lower() for v in head.values("transfer-encoding") for c in v.split(",")
    ]
    if lengths and codings:
        violations.append("both Content-Length and Transfer-Encoding")
    if len(lengths) > 1:
        violations.append("more than one Content-Length")
    if any(not _DECIMAL.fullmatch(value.encode("latin-1")) for value in lengths):
        violations.append("invalid Content-Length")
    if codings and codings != ["chunked"]:
        violations.append("Transfer-Encoding other than chunked")
    hosts = head.values("host")
    if len(hosts) != 1:
        violations.append("no Host" if not hosts else "more than one Host")
    if head.target.startswith(SMUGGLED_PREFIX) or f"{SMUGGLED_PREFIX}-" in head.target:
        violations.append("smuggled request target")
    return violations


Body = tuple[bytes, Fields, int]
"""A body read whole: its bytes, its trailer fields, and how many bytes it took."""


def _decode_chunks(data: bytes) -> tuple[bytes, int] | str | None:
    """(data of the chunks, offset after the last chunk) | violation | None (incomplete)."""
    body = bytearray()
    pos = 0
    while (eol := data.find(CRLF, pos)) >= 0:
        match = _CHUNK_LINE.fullmatch(data[pos:eol])
        if match is None:
            return "malformed chunk-size line"
        size = int(match[1], 16)
        pos = eol + 2
        if size == 0:
            return bytes(body), pos
        if len(data) < pos + size + 2:
            return None
        if data[pos + size : pos + size + 2] != CRLF:
            return "chunk data not followed by CRLF"
        body += data[pos : pos + size]
        pos += size + 2
    # A chunk-size line ended by a bare LF, or endless, is never going to be valid.
    pending = data[pos:]
    return "malformed chunk-size line" if b"\n" in pending or len(pending) > 1024 else None


def _decode_trailers(data: bytes, pos: int) -> tuple[Fields, int] | str | None:
    """(trailer fields, offset after the section) | violation | None (incomplete)."""
    trailers: list[tuple[str, str]] = []
    while (eol := data.find(CRLF, pos)) >= 0:
        line = data[pos:eol]
        pos = eol + 2
        if not line:
            return tuple(trailers), pos
        name, value, violations = field_line_violations(line)
        if violations:
            return f"trailer: {violations[0]}"
        if name.lower() in FRAMING_FIELDS | {"host"}:
            return f"{name} in the trailer section"
        trailers.append((name, value.decode("latin-1")))
    return "malformed trailer section" if b"\n" in data[pos:] else None


def decode_chunked(data: bytes) -> Body | str | None:
    """The strict chunked body at the start of ``data``; a violation; or None while it is
    incomplete and valid so far."""
    chunks = _decode_chunks(data)
    if not isinstance(chunks, tuple):
        return chunks
    body, pos = chunks
    trailers = _decode_trailers(data, pos)
    if not isinstance(trailers, tuple):
        return trailers
    fields, end = trailers
    return body, fields, end


def _read_body(head: Head, framing: str, rest: bytes) -> Body | str | None:
    if framing == "chunked":
        return decode_chunked(rest)
    size = int(head.values("content-length")[0]) if framing == "content-length" else 0
    return (rest[:size], (), size) if len(rest) >= size else None


def parse_request(data: bytes) -> Parsed | None:
    """The first request in ``data`` read strictly; None while it is incomplete. A request
    with violations consumes everything: its framing cannot be trusted."""
    head = parse_head(data)
    if head is None:
        return None
    violations = [*head.violations, *framing_violations(head)]
    framing = "none"
    if head.values("transfer-encoding"):
        framing = "chunked"
    elif head.values("content-length"):
        framing = "content-length"
    if violations:
        return Parsed(head, b"", (), framing, tuple(violations), len(data))
    read = _read_body(head, framing, data[head.length :])
    if read is None:
        return None
    if isinstance(read, str):
        return Parsed(head, b"", (), framing, (read,), len(data))
    body, trailers, used = read
    return Parsed(head, body, trailers, framing, (), head.length + used)
