"""HTTP/1 request-smuggling corpus, a strict recording backend, and the verdict on each case."""

from __future__ import annotations

import contextlib
import enum
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

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


# --- Transfer-Encoding --------------------------------------------------------------------


class TeMeaning(enum.Enum):
    """What a set of Transfer-Encoding lines means under RFC 9112."""

    CHUNKED = "chunked"  # chunked, the only coding: a valid chunked body
    LENIENT = "lenient"  # chunked is final, but the value is one a server may refuse
    INVALID = "invalid"  # chunked is not the final coding, or no valid field: 400 (§6.3)
    ABSENT = "absent"  # no Transfer-Encoding field at all: Content-Length frames
    HIDDEN = "hidden"  # reject, or (unfolding the line) no Transfer-Encoding field


class Layout(enum.Enum):
    """Where the smuggled request sits relative to the two framings."""

    # Chunked only; the smuggled request is the chunk data.
    TE_ALONE = "te-alone"
    # Content-Length covers the chunked body and the smuggled request after it: read as
    # chunked, the smuggled request follows the body and the RFC says to close (CL.TE).
    CL_FIRST = "cl-first-covers-all"
    TE_FIRST = "te-first-covers-all"
    # Content-Length covers only the chunk-size line: read by length, the smuggled
    # request (the chunk data) follows the body (TE.CL).
    CL_SHORT = "cl-short"


TE_VALUES: tuple[tuple[bytes, TeMeaning], ...] = (
    (b"chunked", TeMeaning.CHUNKED),
    (b"Chunked", TeMeaning.CHUNKED),
    (b"CHUNKED", TeMeaning.CHUNKED),
    (b"cHuNkEd", TeMeaning.CHUNKED),
    (b" chunked", TeMeaning.CHUNKED),
    (b"chunked ", TeMeaning.CHUNKED),
    (b"\tchunked", TeMeaning.CHUNKED),
    (b"chunked\t", TeMeaning.CHUNKED),
    (b" \t chunked \t ", TeMeaning.CHUNKED),
    # Unknown codings before chunked: a server SHOULD answer 501 (RFC 9112 §6.1).
    (b"identity, chunked", TeMeaning.LENIENT),
    (b"gzip, chunked", TeMeaning.LENIENT),
    (b"deflate,chunked", TeMeaning.LENIENT),
    (b"xchunked, chunked", TeMeaning.LENIENT),
    # chunked twice is forbidden to senders (§7), undefined for recipients.
    (b"chunked, chunked", TeMeaning.LENIENT),
    # Empty list elements are valid syntax (RFC 9110 §5.6.1); refusing them is safe too.
    (b", chunked", TeMeaning.LENIENT),
    (b"chunked,", TeMeaning.LENIENT),
    (b"chunked, ", TeMeaning.LENIENT),
    (b"chunked,,", TeMeaning.LENIENT),
    # Parameters on chunked SHOULD be treated as an error (§7).
    (b"chunked;q=1", TeMeaning.LENIENT),
    (b"chunked, identity", TeMeaning.INVALID),
    (b"chunked,identity", TeMeaning.INVALID),
    (b"chunked, gzip", TeMeaning.INVALID),
    (b"identity", TeMeaning.INVALID),
    (b"gzip", TeMeaning.INVALID),
    (b"", TeMeaning.INVALID),
    (b"xchunked", TeMeaning.INVALID),
    (b"chunkedx", TeMeaning.INVALID),
    (b"chunk", TeMeaning.INVALID),
    (b"chunke", TeMeaning.INVALID),
    (b"chunked;", TeMeaning.INVALID),
    (b'"chunked"', TeMeaning.INVALID),
    (b"chunked chunked", TeMeaning.INVALID),
    (b"ch unked", TeMeaning.INVALID),
    (b"chunked/1.1", TeMeaning.INVALID),
    (b"chunked=1", TeMeaning.INVALID),
    (b"chunked\xa0", TeMeaning.INVALID),  # no-break space is obs-text, not whitespace
    (b"\xa0chunked", TeMeaning.INVALID),
    (b"chunked\xe2\x80\x8b", TeMeaning.INVALID),  # zero-width space
    (b"\xe1\xb4\x84hunked", TeMeaning.INVALID),  # a small capital C
    (b"*", TeMeaning.INVALID),
)

TE_FIELDS: tuple[tuple[str, tuple[bytes, ...], TeMeaning], ...] = (
    ("no space after colon", (b"Transfer-Encoding:chunked",), TeMeaning.CHUNKED),
    ("tab after colon", (b"Transfer-Encoding:\tchunked",), TeMeaning.CHUNKED),
    ("lowercase name", (b"transfer-encoding: chunked",), TeMeaning.CHUNKED),
    ("uppercase name", (b"TRANSFER-ENCODING: chunked",), TeMeaning.CHUNKED),
    ("mixed-case name", (b"tRaNsFeR-eNcOdInG: chunked",), TeMeaning.CHUNKED),
    # RFC 9112 §5.1: whitespace between name and colon MUST get 400.
    ("space before colon", (b"Transfer-Encoding : chunked",), TeMeaning.INVALID),
    ("tab before colon", (b"Transfer-Encoding\t: chunked",), TeMeaning.INVALID),
    ("two spaces before colon", (b"Transfer-Encoding  : chunked",), TeMeaning.INVALID),
    ("bare CR ends the line", (b"Transfer-Encoding: chunked\rX-Pad: a",), TeMeaning.INVALID),
    ("bare CR in the value", (b"Transfer-Encoding: chun\rked",), TeMeaning.INVALID),
    ("folded value", (b"Transfer-Encoding:", b" chunked"), TeMeaning.LENIENT),
    ("folded value, tab", (b"Transfer-Encoding:", b"\tchunked"), TeMeaning.LENIENT),
    ("fold adds identity", (b"Transfer-Encoding: chunked", b" , identity"), TeMeaning.INVALID),
    ("fold after x", (b"Transfer-Encoding: x", b" chunked"), TeMeaning.INVALID),
    ("line folded into X-Pad", (b"X-Pad: a", b" Transfer-Encoding: chunked"), TeMeaning.HIDDEN),
    ("tab-folded into X-Pad", (b"X-Pad: a", b"\tTransfer-Encoding: chunked"), TeMeaning.HIDDEN),
    ("behind a bare CR in X-Pad", (b"X-Pad: a\rTransfer-Encoding: chunked",), TeMeaning.HIDDEN),
    # Other names are other fields: Content-Length frames.
    ("underscore name", (b"Transfer_Encoding: chunked",), TeMeaning.ABSENT),
    ("plural name", (b"Transfer-Encodings: chunked",), TeMeaning.ABSENT),
    ("x- name", (b"X-Transfer-Encoding: chunked",), TeMeaning.ABSENT),
    ("name without dash", (b"TransferEncoding: chunked",), TeMeaning.ABSENT),
    ("name with suffix", (b"Transfer-Encoding-X: chunked",), TeMeaning.ABSENT),
    ("content- name", (b"Content-Transfer-Encoding: chunked",), TeMeaning.ABSENT),
)

TE_DUPLICATES: tuple[tuple[bytes, bytes, TeMeaning], ...] = (
    (b"chunked", b"chunked", TeMeaning.LENIENT),
    (b"chunked", b"identity", TeMeaning.INVALID),
    (b"identity", b"chunked", TeMeaning.LENIENT),
    (b"chunked", b"xchunked", TeMeaning.INVALID),
    (b"xchunked", b"chunked", TeMeaning.LENIENT),
    (b"chunked", b"gzip", TeMeaning.INVALID),
    (b"gzip", b"chunked", TeMeaning.LENIENT),
    (b"chunked", b"", TeMeaning.LENIENT),
    (b"", b"chunked", TeMeaning.LENIENT),
    (b"Chunked", b"CHUNKED", TeMeaning.LENIENT),
    (b"chunked", b"chunked;", TeMeaning.INVALID),
    (b"chunked", b"x", TeMeaning.INVALID),
)


def te_expectation(meaning: TeMeaning, layout: Layout) -> tuple[Expect, str, bool] | None:
    """(expectation, which framing gives the body, keep-alive) of a TE variant in a layout;
    None where the layout says nothing about it (it only hides the smuggled request in a
    body when Content-Length covers everything)."""
    alone = layout is Layout.TE_ALONE
    covers_all = layout in (Layout.CL_FIRST, Layout.TE_FIRST)
    match meaning:
        case TeMeaning.CHUNKED:
            # With Content-Length too: chunked frames, and the server MUST close (§6.1).
            return (Expect.ACCEPT, "chunked", True) if alone else (Expect.EITHER, "chunked", False)
        case TeMeaning.LENIENT:
            return Expect.EITHER, "chunked", alone
        case TeMeaning.INVALID:
            return Expect.REJECT, "chunked", False
        case TeMeaning.ABSENT:
            return (Expect.ACCEPT, "length", True) if covers_all else None
    # HIDDEN: only a parser that splits the line finds a Transfer-Encoding field.
    return (Expect.EITHER, "length", True) if covers_all else None


def te_request(
    method: str, te_lines: Sequence[bytes], layout: Layout
) -> tuple[bytes, bytes, bytes]:
    """(raw request, body read as chunked, body read by Content-Length) of a layout."""
    if layout is Layout.TE_ALONE:
        return build(method, [HOST, *te_lines], chunked(SMUGGLED)), SMUGGLED, b""
    if layout is Layout.CL_SHORT:
        size_line = b"%x\r\n" % len(SMUGGLED)
        fields = [HOST, *te_lines, content_length(len(size_line))]
        return build(method, fields, chunked(SMUGGLED)), SMUGGLED, size_line
    length = content_length(len(CL_TE_TAIL))
    fields = [HOST, length, *te_lines] if layout is Layout.CL_FIRST else [HOST, *te_lines, length]
    return build(method, fields, CL_TE_TAIL), b"hello", CL_TE_TAIL


def _te_variants() -> Iterator[tuple[str, str, tuple[bytes, ...], TeMeaning]]:
    for value, meaning in TE_VALUES:
        yield "te_value", f"value={value!r}", (transfer_encoding(value),), meaning
    for label, lines, meaning in TE_FIELDS:
        yield "te_field", label, lines, meaning
    for first, second, meaning in TE_DUPLICATES:
        lines = (transfer_encoding(first), transfer_encoding(second))
        yield "te_duplicate", f"values={first!r},{second!r}", lines, meaning


def te_drafts() -> Iterator[Draft]:
    """Transfer-Encoding spellings, field syntax and duplicates, in every CL/TE layout."""
    for category, label, lines, meaning in _te_variants():
        for layout in Layout:
            expectation = te_expectation(meaning, layout)
            if expectation is None:
                continue
            expect, reading, keep_alive = expectation
            for method in ("POST", "GET"):
                raw, chunked_body, length_body = te_request(method, lines, layout)
                yield Draft(
                    category=category,
                    name=f"{label} {layout.value} {method}",
                    method=method,
                    raw=raw,
                    expect=expect,
                    bodies=(chunked_body if reading == "chunked" else length_body,),
                    keep_alive=keep_alive,
                    reject_statuses=(501,) if meaning is TeMeaning.LENIENT else (),
                )


TRAILERS: tuple[tuple[bytes, Expect], ...] = (
    # Framing fields are not allowed in trailers (RFC 9110 §6.5.1): a server may
    # discard them or refuse the message, but must never act on or forward them.
    (b"Transfer-Encoding: chunked", Expect.EITHER),
    (b"Transfer-Encoding: identity", Expect.EITHER),
    (b"Content-Length: 0", Expect.EITHER),
    (b"Content-Length: 5", Expect.EITHER),
    (b"Content-Length: 0\r\nTransfer-Encoding: chunked", Expect.EITHER),
    (b"Host: y", Expect.EITHER),
    (b"X-Trailer: 1", Expect.ACCEPT),
)


def te_trailer_drafts() -> Iterator[Draft]:
    """Framing fields in the trailer section of a chunked body."""
    for trailer, expect in TRAILERS:
        for method in ("POST", "PUT"):
            body = chunk(SMUGGLED) + b"0\r\n" + trailer + b"\r\n\r\n"
            raw = build(method, [HOST, transfer_encoding(b"chunked")], body)
            yield Draft(
                "te_trailer", f"trailer={trailer!r} {method}", method, raw, expect, (SMUGGLED,)
            )


# --- Content-Length -------------------------------------------------------------------------

LENGTH = len(SMUGGLED)
CL_VALUES: tuple[tuple[bytes, Expect], ...] = (
    (b"%d" % LENGTH, Expect.ACCEPT),
    (b"0%d" % LENGTH, Expect.ACCEPT),
    (b"0000%d" % LENGTH, Expect.ACCEPT),
    (b" %d" % LENGTH, Expect.ACCEPT),
    (b"%d " % LENGTH, Expect.ACCEPT),
    (b"\t%d" % LENGTH, Expect.ACCEPT),
    (b"%d\t" % LENGTH, Expect.ACCEPT),
    # A list of equal values may be read as that value (RFC 9112 §6.3).
    (b"%d,%d" % (LENGTH, LENGTH), Expect.EITHER),
    (b"%d, %d" % (LENGTH, LENGTH), Expect.EITHER),
    (b"%d ,%d" % (LENGTH, LENGTH), Expect.EITHER),
    (b"%d,,%d" % (LENGTH, LENGTH), Expect.EITHER),
    (b"%d, %d, %d" % (LENGTH, LENGTH, LENGTH), Expect.EITHER),
    (b"+%d" % LENGTH, Expect.REJECT),
    (b"-%d" % LENGTH, Expect.REJECT),
    (b"%d, 0" % LENGTH, Expect.REJECT),
    (b"0, %d" % LENGTH, Expect.REJECT),
    (b"%d,0" % LENGTH, Expect.REJECT),
    (b"%d 0" % LENGTH, Expect.REJECT),
    (b"0 %d" % LENGTH, Expect.REJECT),
    (b"%d, %d" % (LENGTH, LENGTH + 1), Expect.REJECT),
    (b"0x%x" % LENGTH, Expect.REJECT),
    (b"0X%X" % LENGTH, Expect.REJECT),
    (b"%d.0" % LENGTH, Expect.REJECT),
    (b"%de0" % LENGTH, Expect.REJECT),
    (b"%d;" % LENGTH, Expect.REJECT),
    (b"%d;ext=1" % LENGTH, Expect.REJECT),
    (b"", Expect.REJECT),
    (b'"%d"' % LENGTH, Expect.REJECT),
    (b"%d\xa0" % LENGTH, Expect.REJECT),
    (b"%d_" % LENGTH, Expect.REJECT),
    (b"%dL" % LENGTH, Expect.REJECT),
    (b"%d\\" % LENGTH, Expect.REJECT),
    # Digits of other scripts: Arabic-Indic and full-width.
    (b"\xd9\xa4\xd9\xa0", Expect.REJECT),
    (b"\xef\xbc\x94\xef\xbc\x90", Expect.REJECT),
    # 2**64 + LENGTH: a parser that wraps around reads LENGTH.
    (b"%d" % (2**64 + LENGTH), Expect.REJECT),
    (b"9" * 30, Expect.REJECT),
)

CL_DUPLICATES: tuple[tuple[tuple[bytes, ...], Expect], ...] = (
    ((b"%d" % LENGTH, b"%d" % LENGTH), Expect.EITHER),
    ((b"%d" % LENGTH, b"%d" % LENGTH, b"%d" % LENGTH), Expect.EITHER),
    ((b"%d" % LENGTH, b"%d " % LENGTH), Expect.EITHER),
    ((b"%d" % LENGTH, b"0%d" % LENGTH), Expect.EITHER),
    ((b"%d" % LENGTH, b"%d, %d" % (LENGTH, LENGTH)), Expect.EITHER),
    ((b"%d" % LENGTH, b"0"), Expect.REJECT),
    ((b"0", b"%d" % LENGTH), Expect.REJECT),
    ((b"%d" % LENGTH, b"%d" % (LENGTH + 1)), Expect.REJECT),
    ((b"%d" % LENGTH, b""), Expect.REJECT),
    ((b"", b"%d" % LENGTH), Expect.REJECT),
    ((b"%d" % LENGTH, b"+%d" % LENGTH), Expect.REJECT),
    ((b"%d" % LENGTH, b"%d, 0" % LENGTH), Expect.REJECT),
)

CL_NEIGHBOURS: tuple[tuple[str, bytes], ...] = (
    # Fields with names close to Content-Length are other fields (RFC 9110 §5.1).
    ("Content_Length: 0", b"Content_Length: 0"),
    ("Content-Length-X: 0", b"Content-Length-X: 0"),
    ("X-Content-Length: 0", b"X-Content-Length: 0"),
    ("ContentLength: 0", b"ContentLength: 0"),
    ("Content-Lenght: 0", b"Content-Lenght: 0"),
)


def cl_drafts() -> Iterator[Draft]:
    """Content-Length values, duplicates and look-alike names; the body is the smuggled
    request, so that a proxy reading a shorter length forwards it as a request."""
    for value, expect in CL_VALUES:
        for method in ("POST", "GET", "PUT"):
            raw = build(method, [HOST, content_length(value)], SMUGGLED)
            yield Draft("cl_value", f"value={value!r} {method}", method, raw, expect, (SMUGGLED,))
    for values, expect in CL_DUPLICATES:
        for method in ("POST", "GET"):
            raw = build(method, [HOST, *(content_length(v) for v in values)], SMUGGLED)
            name = f"values={','.join(repr(v) for v in values)} {method}"
            yield Draft("cl_duplicate", name, method, raw, expect, (SMUGGLED,))
    for label, neighbour in CL_NEIGHBOURS:
        for method in ("POST", "GET"):
            for order, fields in (
                ("after", [HOST, content_length(LENGTH), neighbour]),
                ("before", [HOST, neighbour, content_length(LENGTH)]),
            ):
                raw = build(method, fields, SMUGGLED)
                name = f"{label} {order} Content-Length {method}"
                yield Draft("cl_neighbour", name, method, raw, Expect.ACCEPT, (SMUGGLED,))


# --- chunk sizes and chunk lines ------------------------------------------------------------

CHUNK_DATA = SMUGGLED + b"x" * (0x3C - len(SMUGGLED))
"""The smuggled request padded to 0x3c bytes, so that the size has a hex letter in it."""


def _chunk_bodies() -> Iterator[tuple[str, bytes, Expect]]:
    data = CHUNK_DATA
    accept = Expect.ACCEPT
    yield "lowercase hex", chunk(data, size=b"3c") + LAST_CHUNK, accept
    yield "uppercase hex", chunk(data, size=b"3C") + LAST_CHUNK, accept
    yield "leading zero", chunk(data, size=b"03c") + LAST_CHUNK, accept
    yield "thirty leading zeros", chunk(data, size=b"0" * 30 + b"3c") + LAST_CHUNK, accept
    yield "two chunks", chunk(data[:7]) + chunk(data[7:]) + LAST_CHUNK, accept
    # Split before the id: drafts hold ID_SLOT, which must stay in one piece.
    one_byte = b"".join(chunk(data[i : i + 1]) for i in range(10)) + chunk(data[10:])
    yield "one-byte chunks", one_byte + LAST_CHUNK, accept
    yield "extension", chunk(data, ext=b";a") + LAST_CHUNK, accept
    yield "extension with value", chunk(data, ext=b";a=b") + LAST_CHUNK, accept
    yield "quoted extension", chunk(data, ext=b';a="b c;d"') + LAST_CHUNK, accept
    yield "two extensions", chunk(data, ext=b";a=b;c=d") + LAST_CHUNK, accept
    yield "extension with BWS", chunk(data, ext=b" ; a = b") + LAST_CHUNK, accept
    yield "last-chunk extension", chunk(data) + b"0;a=b\r\n\r\n", accept
    yield "last chunk 000", chunk(data) + b"000\r\n\r\n", accept
    yield "trailer field", chunk(data) + b"0\r\nX-T: 1\r\n\r\n", accept
    yield "two trailer fields", chunk(data) + b"0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", accept
    # Not in the grammar, but harmless to accept: the proxy re-frames the body.
    either = Expect.EITHER
    yield "space after size", chunk(data, size=b"3c ") + LAST_CHUNK, either
    yield "tab after size", chunk(data, size=b"3c\t") + LAST_CHUNK, either
    yield "empty extension", chunk(data, ext=b";") + LAST_CHUNK, either
    yield "extension without name", chunk(data, ext=b";=b") + LAST_CHUNK, either
    yield "unquoted space in extension", chunk(data, ext=b";a=b c") + LAST_CHUNK, either
    yield "bare LF after size", chunk(data, size_end=b"\n") + LAST_CHUNK, either
    yield "bare LF after data", chunk(data, data_end=b"\n") + LAST_CHUNK, either
    yield "bare LF after last chunk", chunk(data) + b"0\n\r\n", either
    yield "bare LF as the final line", chunk(data) + b"0\r\n\n", either
    yield "obs-fold in trailer", chunk(data) + b"0\r\nX-T: 1\r\n 2\r\n\r\n", either
    reject = Expect.REJECT
    yield "0x prefix", chunk(data, size=b"0x3c") + LAST_CHUNK, reject
    yield "plus sign", chunk(data, size=b"+3c") + LAST_CHUNK, reject
    yield "minus sign", chunk(data, size=b"-3c") + LAST_CHUNK, reject
    yield "leading space", chunk(data, size=b" 3c") + LAST_CHUNK, reject
    yield "underscore", chunk(data, size=b"3_c") + LAST_CHUNK, reject
    yield "non-hex digit", chunk(data, size=b"3g") + LAST_CHUNK, reject
    yield "empty size", chunk(data, size=b"") + LAST_CHUNK, reject
    yield "size of spaces", chunk(data, size=b"  ") + LAST_CHUNK, reject
    yield "size one short", chunk(data, size=b"3b") + LAST_CHUNK, reject
    # 17 hex digits: 2**64 + 0x3c, which a parser that wraps around reads as 0x3c.
    yield "size wraps to 3c", chunk(data, size=b"1" + b"0" * 14 + b"3c") + LAST_CHUNK, reject
    yield "size overflow", chunk(data, size=b"f" * 20) + LAST_CHUNK, reject
    yield "data without CRLF", chunk(data, data_end=b"") + LAST_CHUNK, reject
    yield "data then bare CR", chunk(data, data_end=b"\r") + LAST_CHUNK, reject
    yield "bare CR after size", chunk(data, size_end=b"\r") + LAST_CHUNK, reject
    yield "bare LF in extension", chunk(data, ext=b";a\nb") + LAST_CHUNK, reject
    yield "bare CR in extension", chunk(data, ext=b";a\rb") + LAST_CHUNK, reject
    yield "no last chunk", chunk(data) + SMUGGLED, reject
    yield "last chunk without blank line", chunk(data) + b"0\r\n" + SMUGGLED, reject
    yield "trailer without colon", chunk(data) + b"0\r\nX-T\r\n\r\n", reject
    yield "space before colon in trailer", chunk(data) + b"0\r\nX-T : 1\r\n\r\n", reject


def chunk_drafts() -> Iterator[Draft]:
    """Chunk-size, chunk-extension, chunk line-end and trailer-section oddities."""
    for label, body, expect in _chunk_bodies():
        for method in ("POST", "PUT"):
            raw = build(method, [HOST, transfer_encoding(b"chunked")], body)
            yield Draft("chunk", f"{label} {method}", method, raw, expect, (CHUNK_DATA,))


# --- line endings ---------------------------------------------------------------------------


def _framed(framing: str) -> tuple[bytes, bytes]:
    """(framing field line, body) whose body is the smuggled request."""
    if framing == "length":
        return content_length(LENGTH), SMUGGLED
    return transfer_encoding(b"chunked"), chunked(SMUGGLED)


def lines_request(method: str, ends: dict[str, bytes], framing: str, prefix: bytes = b"") -> bytes:
    """A request whose line ends are chosen per line: request-line, host, framing, pad, blank."""
    framing_line, body = _framed(framing)
    lines = (
        ("request-line", b"%s %s HTTP/1.1" % (method.encode(), CASE_TARGET)),
        ("host", HOST),
        ("framing", framing_line),
        ("pad", b"X-Pad: a"),
        ("blank", b""),
    )
    return prefix + b"".join(line + ends.get(name, CRLF) for name, line in lines) + body


LINE_ENDS: tuple[tuple[str, dict[str, bytes], Expect], ...] = (
    # A recipient MAY recognize a single LF as a line terminator (RFC 9112 §2.2).
    ("LF after request line", {"request-line": b"\n"}, Expect.EITHER),
    ("LF after Host", {"host": b"\n"}, Expect.EITHER),
    ("LF after framing field", {"framing": b"\n"}, Expect.EITHER),
    ("LF after last field", {"pad": b"\n"}, Expect.EITHER),
    ("LF as blank line", {"blank": b"\n"}, Expect.EITHER),
    (
        "LF everywhere",
        dict.fromkeys(("request-line", "host", "framing", "pad", "blank"), b"\n"),
        Expect.EITHER,
    ),
    # A bare CR MUST be treated as invalid or replaced by SP (§2.2); either way these fail.
    ("CR after request line", {"request-line": b"\r"}, Expect.REJECT),
    ("CR after Host", {"host": b"\r"}, Expect.REJECT),
    ("CR after framing field", {"framing": b"\r"}, Expect.REJECT),
    ("CR as blank line", {"blank": b"\r"}, Expect.REJECT),
    # Replaced by SP, this bare CR leaves trailing whitespace: a valid field.
    ("CR CR LF after last field", {"pad": b"\r\r\n"}, Expect.EITHER),
)

HIDDEN_BEHIND_LINE_BREAKS: tuple[tuple[str, bytes, Expect], ...] = (
    # (label, a field line after Content-Length, expectation); the body is the smuggled
    # request, so a parser that finds a "Content-Length: 0" in the line forwards it.
    ("CR inside a value", b"X-Pad: a\rb", Expect.EITHER),
    ("LF inside a value", b"X-Pad: a\nX-B: c", Expect.EITHER),
    # Replacing the CR by SP (§2.2) leaves one Content-Length.
    ("CL 0 behind a bare CR", b"X-Pad: a\rContent-Length: 0", Expect.EITHER),
    # Splitting at the LF gives two Content-Lengths; not splitting, a LF in a value.
    ("CL 0 behind a bare LF", b"X-Pad: a\nContent-Length: 0", Expect.REJECT),
)


def line_end_drafts() -> Iterator[Draft]:
    """Bare LF and bare CR as line ends, in every line of the head, and hidden fields."""
    for label, ends, expect in LINE_ENDS:
        for framing in ("length", "chunked"):
            for method in ("POST", "GET"):
                raw = lines_request(method, ends, framing)
                name = f"{label} {framing} {method}"
                yield Draft("line_end", name, method, raw, expect, (SMUGGLED,))
    for label, prefix in (("CRLF", b"\r\n"), ("LF", b"\n"), ("two CRLF", b"\r\n\r\n")):
        # A server SHOULD ignore at least one empty line before the request line (§2.2).
        raw = lines_request("POST", {}, "length", prefix=prefix)
        name = f"{label} before the request line"
        yield Draft("line_end", name, "POST", raw, Expect.EITHER, (SMUGGLED,))
    for method in ("POST", "GET"):
        for label, line, expect in HIDDEN_BEHIND_LINE_BREAKS:
            raw = build(method, [HOST, content_length(LENGTH), line], SMUGGLED)
            yield Draft("line_end", f"{label} {method}", method, raw, expect, (SMUGGLED,))
        # Only a parser that splits at the LF finds Transfer-Encoding, and then frames
        # as chunked and must close; otherwise the LF in a value is refused.
        lines = [b"X-Pad: a\nTransfer-Encoding: chunked"]
        raw, chunked_body, _ = te_request(method, lines, Layout.CL_FIRST)
        name = f"TE behind a bare LF {method}"
        yield Draft("line_end", name, method, raw, Expect.EITHER, (chunked_body,), False)


# --- NUL and other control characters ---------------------------------------------------------

CONTROLS: tuple[bytes, ...] = (b"\x00", b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x7f")


CHAR = b"<C>"
"""Where the control character goes in a control template."""


def _control_templates() -> dict[str, bytes]:
    """Requests with CHAR where a control character goes, by the position's name."""
    length = content_length(LENGTH)
    chunked_head = [HOST, transfer_encoding(b"chunked")]
    plain = build("POST", [HOST, length], SMUGGLED)
    return {
        "value middle": build("POST", [HOST, length, b"X-Pad: a<C>b"], SMUGGLED),
        "value end": build("POST", [HOST, length, b"X-Pad: a<C>"], SMUGGLED),
        "Content-Length end": build("POST", [HOST, content_length(b"%d<C>" % LENGTH)], SMUGGLED),
        "Content-Length start": build("POST", [HOST, content_length(b"<C>%d" % LENGTH)], SMUGGLED),
        "Transfer-Encoding end": build(
            "POST", [HOST, transfer_encoding(b"chunked<C>")], chunked(SMUGGLED)
        ),
        "Transfer-Encoding start": build(
            "POST", [HOST, transfer_encoding(b"<C>chunked")], chunked(SMUGGLED)
        ),
        "Host end": build("POST", [HOST + CHAR, length], SMUGGLED),
        "name middle": build("POST", [HOST, length, b"X-P<C>ad: a"], SMUGGLED),
        "before colon": build("POST", [HOST, length, b"X-Pad<C>: a"], SMUGGLED),
        "target": build("POST", [HOST, length], SMUGGLED, target=CASE_TARGET + b"<C>x"),
        "method": plain.replace(b"POST", b"PO<C>ST", 1),
        "separator": plain.replace(b"POST ", b"POST<C>", 1),
        "chunk extension": build("POST", chunked_head, chunk(SMUGGLED, ext=b";a<C>b") + LAST_CHUNK),
        "trailer value": build("POST", chunked_head, chunk(SMUGGLED) + b"0\r\nX-T: a<C>b\r\n\r\n"),
    }


def control_expectation(position: str, char: bytes) -> Expect:
    """RFC 9110 §5.5: NUL in a field value is rejected or replaced by SP; other controls
    are invalid. Names, methods and targets allow no controls at all (RFC 9112 §3)."""
    if position in ("name middle", "before colon", "target", "method"):
        return Expect.REJECT
    if position == "separator":
        # VT and FF MAY be read as whitespace in the request line (§3).
        return Expect.EITHER if char in (b"\x0b", b"\x0c") else Expect.REJECT
    if position == "chunk extension":
        # The proxy discards extensions; only CR and LF in one are dangerous (see "chunk").
        return Expect.EITHER
    return Expect.EITHER if char == b"\x00" else Expect.REJECT


def control_drafts() -> Iterator[Draft]:
    """NUL and control characters in names, values, framing fields, targets and chunks."""
    for position, template in _control_templates().items():
        for char in CONTROLS:
            raw = template.replace(CHAR, char)
            name = f"{char!r} in {position} POST"
            expect = control_expectation(position, char)
            yield Draft("control", name, "POST", raw, expect, (SMUGGLED,))


# --- obs-fold ---------------------------------------------------------------------------------

FOLDS = (b" ", b"\t", b"  ", b" \t ")

FOLDED: tuple[tuple[str, Sequence[bytes], str, Expect], ...] = (
    # (label, field lines with {fold} before a continuation, body reading, expectation)
    # RFC 9112 §5.2: a server MUST reject obs-fold or replace it with SP before use.
    ("neutral field", [content_length(LENGTH), b"X-Pad: a", b"{fold}b"], "length", Expect.EITHER),
    ("Content-Length value", [b"Content-Length:", b"{fold}%d" % LENGTH], "length", Expect.EITHER),
    (
        "Content-Length 0 then",
        [b"Content-Length: 0", b"{fold}%d" % LENGTH],
        "length",
        Expect.REJECT,
    ),
    ("Content-Length then 0", [content_length(LENGTH), b"{fold}0"], "length", Expect.REJECT),
    (
        "CL 0 folded into X-Pad",
        [content_length(LENGTH), b"X-Pad: a", b"{fold}Content-Length: 0"],
        "length",
        Expect.EITHER,
    ),
    ("Transfer-Encoding value", [b"Transfer-Encoding:", b"{fold}chunked"], "te", Expect.EITHER),
    (
        "Transfer-Encoding then identity",
        [b"Transfer-Encoding: chunked", b"{fold}, identity"],
        "te",
        Expect.REJECT,
    ),
    ("Host value", [b"Host: x", b"{fold}y", content_length(LENGTH)], "length", Expect.REJECT),
    # Whitespace before the first field: reject, or skip that line (§2.2).
    ("first field", [b"{fold}X-Pad: a", content_length(LENGTH)], "length", Expect.EITHER),
)


def fold_drafts() -> Iterator[Draft]:
    """obs-fold in neutral, framing and Host fields, and before the first field."""
    for label, lines, reading, expect in FOLDED:
        for fold in FOLDS:
            fields = [line.replace(b"{fold}", fold) for line in lines]
            if not any(line.startswith(b"Host") for line in fields):
                fields = [HOST, *fields] if not fields[0].startswith(fold) else [*fields, HOST]
            body = SMUGGLED if reading == "length" else chunked(SMUGGLED)
            raw = build("POST", fields, body)
            yield Draft("obs_fold", f"{label} fold={fold!r} POST", "POST", raw, expect, (SMUGGLED,))
    for fold in FOLDS:
        # TE folded, CL short: a proxy that drops the folded line frames by length, and
        # forwards the chunk data (the smuggled request) as a request of its own.
        lines = (b"Transfer-Encoding:", fold + b"chunked")
        raw, chunked_body, _ = te_request("POST", lines, Layout.CL_SHORT)
        name = f"Transfer-Encoding value with CL short fold={fold!r} POST"
        yield Draft("obs_fold", name, "POST", raw, Expect.EITHER, (chunked_body,), False)
        # TE on a line of its own folded into the one before, CL covering all.
        lines = (b"X-Pad: a", fold + b"Transfer-Encoding: chunked")
        raw, _, length_body = te_request("POST", lines, Layout.CL_FIRST)
        name = f"TE line folded into X-Pad fold={fold!r} POST"
        yield Draft("obs_fold", name, "POST", raw, Expect.EITHER, (length_body,))
        covering = [HOST, content_length(len(CL_TE_TAIL))]
        raw = build("POST", [fold + b"Transfer-Encoding: chunked", *covering], CL_TE_TAIL)
        name = f"TE as the first field, folded fold={fold!r} POST"
        yield Draft("obs_fold", name, "POST", raw, Expect.EITHER, (CL_TE_TAIL,))


# --- HTTP/1.0 ---------------------------------------------------------------------------------


def http10_drafts() -> Iterator[Draft]:
    """HTTP/1.0 requests: Transfer-Encoding there means faulty framing (RFC 9112 §6.1)."""
    te = transfer_encoding(b"chunked")
    length = content_length(LENGTH)
    covering = content_length(len(CL_TE_TAIL))
    short = content_length(len(b"%x\r\n" % len(SMUGGLED)))
    faulty: tuple[tuple[str, Sequence[bytes], bytes], ...] = (
        ("TE alone", [HOST, te], chunked(SMUGGLED)),
        ("TE Chunked", [HOST, transfer_encoding(b"Chunked")], chunked(SMUGGLED)),
        ("TE and keep-alive", [HOST, te, b"Connection: keep-alive"], chunked(SMUGGLED)),
        ("TE, CL covers all", [HOST, te, covering], CL_TE_TAIL),
        ("CL covers all, TE", [HOST, covering, te], CL_TE_TAIL),
        ("TE, CL short", [HOST, te, short], chunked(SMUGGLED)),
        ("TE identity and CL", [HOST, transfer_encoding(b"identity"), length], SMUGGLED),
    )
    valid: tuple[tuple[str, Sequence[bytes], bool, str | None], ...] = (
        # (label, fields, keep-alive, Host the backend must see)
        ("CL", [HOST, length], False, "x"),
        ("CL and keep-alive", [HOST, length, b"Connection: keep-alive"], True, "x"),
        ("CL and Expect", [HOST, length, b"Expect: 100-continue"], False, "x"),
    )
    # Host is optional in HTTP/1.0, but the proxy routes by host and speaks HTTP/1.1
    # upstream, where Host is required (RFC 9112 §3.2): it answers 400, as Envoy does.
    faulty += (("CL without Host", [length], SMUGGLED),)
    for method in ("POST", "GET", "PUT"):
        for label, fields, body in faulty:
            raw = build(method, fields, body, version=b"HTTP/1.0")
            yield Draft("http10", f"{label} {method}", method, raw, Expect.REJECT, (SMUGGLED,))
        for label, fields, keep_alive, host in valid:
            raw = build(method, fields, SMUGGLED, version=b"HTTP/1.0")
            yield Draft(
                "http10", f"{label} {method}", method, raw, Expect.ACCEPT, (SMUGGLED,),
                keep_alive, host,
            )  # fmt: skip


# --- Expect -----------------------------------------------------------------------------------

EXPECT_VALUES: tuple[tuple[bytes, Expect], ...] = (
    (b"100-continue", Expect.ACCEPT),
    (b"100-Continue", Expect.ACCEPT),
    (b"100-CONTINUE", Expect.ACCEPT),
    (b"100-continue ", Expect.ACCEPT),
    (b"\t100-continue", Expect.ACCEPT),
    # Any other expectation MAY get 417 (RFC 9110 §10.1.1).
    (b"100-continuex", Expect.EITHER),
    (b"100 continue", Expect.EITHER),
    (b"100-continue, x", Expect.EITHER),
    (b"x, 100-continue", Expect.EITHER),
    (b"", Expect.EITHER),
    (b"100", Expect.EITHER),
    (b"200-ok", Expect.EITHER),
    (b"100-continue;a=b", Expect.EITHER),
    (b"100-continue,100-continue", Expect.EITHER),
)


def expect_drafts() -> Iterator[Draft]:
    """Expect values with a length-framed or chunked body, and with CL.TE conflicts."""
    for value, expect in EXPECT_VALUES:
        for framing in ("length", "chunked"):
            framing_line, body = _framed(framing)
            raw = build("POST", [HOST, b"Expect: " + value, framing_line], body)
            name = f"value={value!r} {framing} POST"
            yield Draft("expect", name, "POST", raw, expect, (SMUGGLED,))
    for framing in ("length", "chunked"):
        framing_line, body = _framed(framing)
        raw = build(
            "POST", [HOST, b"Expect: 100-continue", b"Expect: 100-continue", framing_line], body
        )
        yield Draft("expect", f"two fields {framing} POST", "POST", raw, Expect.EITHER, (SMUGGLED,))
    for layout in Layout:
        if layout is Layout.TE_ALONE:
            continue
        raw, chunked_body, _ = te_request("POST", [transfer_encoding(b"chunked")], layout)
        raw = raw.replace(HOST, HOST + b"\r\nExpect: 100-continue", 1)
        name = f"100-continue {layout.value} POST"
        yield Draft("expect", name, "POST", raw, Expect.EITHER, (chunked_body,), False)


# --- request line ---------------------------------------------------------------------------


def _request_line_variants() -> Iterator[tuple[str, bytes, Expect, str, str | None]]:
    """(label, request line, expectation, forwarded method, forwarded Host)."""
    target = CASE_TARGET
    accept, either, reject = Expect.ACCEPT, Expect.EITHER, Expect.REJECT
    yield "absolute-form", b"POST http://x" + target + b" HTTP/1.1", accept, "POST", "x"
    yield (
        "absolute-form with port",
        b"POST http://x:80" + target + b" HTTP/1.1",
        accept,
        "POST",
        None,
    )
    yield "absolute-form, query", b"POST http://x" + target + b"?q=1 HTTP/1.1", accept, "POST", "x"
    yield (
        "absolute-form, upper host",
        b"POST http://X" + target + b" HTTP/1.1",
        accept,
        "POST",
        None,
    )
    yield "absolute-form https", b"POST https://x" + target + b" HTTP/1.1", either, "POST", "x"
    yield (
        "absolute-form upper scheme",
        b"POST HTTP://x" + target + b" HTTP/1.1",
        either,
        "POST",
        "x",
    )
    yield "query", b"POST " + target + b"?q=1&r HTTP/1.1", accept, "POST", "x"
    yield "query with slash and ?", b"POST " + target + b"?q=/a?b HTTP/1.1", accept, "POST", "x"
    yield "percent-encoding", b"POST " + target + b"%41 HTTP/1.1", accept, "POST", "x"
    yield "semicolon", b"POST " + target + b";p HTTP/1.1", accept, "POST", "x"
    yield "extension method", target.join((b"PURGE ", b" HTTP/1.1")), accept, "PURGE", "x"
    yield "PATCH", target.join((b"PATCH ", b" HTTP/1.1")), accept, "PATCH", "x"
    # Lenient whitespace parsing is allowed (RFC 9112 §3), so is rejecting.
    yield "two spaces after method", b"POST  " + target + b" HTTP/1.1", either, "POST", "x"
    yield "two spaces before version", b"POST " + target + b"  HTTP/1.1", either, "POST", "x"
    yield "space after version", b"POST " + target + b" HTTP/1.1 ", either, "POST", "x"
    yield "space before method", b" POST " + target + b" HTTP/1.1", either, "POST", "x"
    yield "tab after method", b"POST\t" + target + b" HTTP/1.1", either, "POST", "x"
    yield "tab before version", b"POST " + target + b"\tHTTP/1.1", either, "POST", "x"
    yield "lowercase method", b"post " + target + b" HTTP/1.1", either, "post", "x"
    yield "capitalized method", b"Post " + target + b" HTTP/1.1", either, "Post", "x"
    yield "fragment", b"POST " + target + b"#f HTTP/1.1", either, "POST", "x"
    yield "no leading slash", b"POST " + target[1:] + b" HTTP/1.1", either, "POST", "x"
    yield "HTTP/1.2", b"POST " + target + b" HTTP/1.2", either, "POST", "x"
    yield "8 KiB target", b"POST " + target + b"?" + b"a" * 8192 + b" HTTP/1.1", either, "POST", "x"
    yield "extra word", b"POST " + target + b" HTTP/1.1 x", reject, "POST", "x"
    yield "no version", b"POST " + target, reject, "POST", "x"
    yield "no target", b"POST HTTP/1.1", reject, "POST", "x"
    for version in (
        b"HTTP/1",
        b"HTTP/11",
        b"HTTP/1.10",
        b"HTTP/01.1",
        b"HTTP/1.01",
        b"http/1.1",
        b"Http/1.1",
        b"HTTP/1.1x",
        b"HTTPS/1.1",
        b"HTTP/ 1.1",
        b"HTTP /1.1",
        b"HTTP/0.9",
        b"HTTP/1.",
        b"HTTP/.1",
        b"HTTP\\1.1",
    ):
        yield f"version {version!r}", b"POST " + target + b" " + version, reject, "POST", "x"
    for method in (b"PO(ST", b"P/OST", b"PO,ST", b"P@ST", b'PO"ST', b"\xc3\x9fOST"):
        yield f"method {method!r}", method + b" " + target + b" HTTP/1.1", reject, "POST", "x"


def request_line_drafts() -> Iterator[Draft]:
    """Request-line oddities, each with a Content-Length body that is the smuggled request."""
    for label, line, expect, method, host in _request_line_variants():
        raw = line + b"\r\n" + b"\r\n".join([HOST, content_length(LENGTH)]) + b"\r\n\r\n" + SMUGGLED
        statuses = (505,) if label.startswith("version") else ()
        yield Draft("request_line", label, method, raw, expect, (SMUGGLED,), True, host, statuses)
    for version in (b"HTTP/2.0", b"HTTP/3.0"):
        raw = build("POST", [HOST, content_length(LENGTH)], SMUGGLED, version=version)
        yield Draft(
            "request_line", f"version {version!r}", "POST", raw, Expect.REJECT, (SMUGGLED,),
            reject_statuses=(505,),
        )  # fmt: skip


# --- field names ------------------------------------------------------------------------------

NAME_CHARS = (
    b" ", b"\t", b'"', b"(", b")", b",", b"/", b";", b"<", b"=", b">", b"?", b"@", b"[", b"\\",
    b"]", b"{", b"}", b"\x80", b"\xff",
)  # fmt: skip


def header_name_drafts() -> Iterator[Draft]:
    """Characters that are not token characters in neutral and framing field names; they
    are invalid field lines (and whitespace before the colon MUST get 400, RFC 9112 §5.1)."""
    for char in NAME_CHARS:
        fields = [HOST, content_length(LENGTH), b"X-P" + char + b"ad: a"]
        raw = build("POST", fields, SMUGGLED)
        yield Draft(
            "header_name", f"{char!r} in X-Pad POST", "POST", raw, Expect.REJECT, (SMUGGLED,)
        )
        fields = [HOST, b"Content-Length" + char + b": %d" % LENGTH]
        raw = build("POST", fields, SMUGGLED)
        name = f"{char!r} after Content-Length POST"
        yield Draft("header_name", name, "POST", raw, Expect.REJECT, (SMUGGLED,))
        raw, _, _ = te_request(
            "POST", [b"Transfer-Encoding" + char + b": chunked"], Layout.CL_SHORT
        )
        name = f"{char!r} after Transfer-Encoding, CL short POST"
        yield Draft("header_name", name, "POST", raw, Expect.REJECT, (SMUGGLED,), False)
    specials = (
        ("empty name", b": a"),
        ("no colon", b"X-Pad a"),
        ("colon only", b":"),
        ("name is a request line", b"GET /smuggled-" + ID_SLOT + b" HTTP/1.1"),
    )
    for label, line in specials:
        raw = build("POST", [HOST, content_length(LENGTH), line], SMUGGLED)
        yield Draft("header_name", f"{label} POST", "POST", raw, Expect.REJECT, (SMUGGLED,))


# --- Host -------------------------------------------------------------------------------------


def host_drafts() -> Iterator[Draft]:
    """Host fields: a server MUST answer 400 to none, two, or an invalid one (RFC 9112 §3.2)."""
    length = content_length(LENGTH)
    variants: tuple[tuple[str, Sequence[bytes], bytes, Expect, str | None], ...] = (
        ("two equal Hosts", [HOST, HOST, length], CASE_TARGET, Expect.REJECT, None),
        ("two Hosts", [HOST, b"Host: y", length], CASE_TARGET, Expect.REJECT, None),
        ("no Host", [length], CASE_TARGET, Expect.REJECT, None),
        ("Host with space", [b"Host: x y", length], CASE_TARGET, Expect.REJECT, None),
        ("Host with userinfo", [b"Host: u@x", length], CASE_TARGET, Expect.REJECT, None),
        ("Host with path", [b"Host: x/y", length], CASE_TARGET, Expect.REJECT, None),
        ("Host with bad port", [b"Host: x:y", length], CASE_TARGET, Expect.REJECT, None),
        ("empty Host", [b"Host:", length], CASE_TARGET, Expect.EITHER, ""),
        ("Host with port", [b"Host: x:80", length], CASE_TARGET, Expect.ACCEPT, "x:80"),
        ("IPv6 Host", [b"Host: [::1]:80", length], CASE_TARGET, Expect.ACCEPT, "[::1]:80"),
        # A proxy MUST replace Host with the authority of an absolute-form target
        # (RFC 9112 §3.2.2), or the backend routes by the wrong one.
        ("absolute-form, other Host", [b"Host: y", length], ABSOLUTE, Expect.ACCEPT, "x"),
    )  # fmt: skip
    for label, fields, target, expect, host in variants:
        for method in ("POST", "GET"):
            raw = build(method, fields, SMUGGLED, target=target)
            yield Draft("host", f"{label} {method}", method, raw, expect, (SMUGGLED,), True, host)


# --- methods with bodies ----------------------------------------------------------------------

METHODS = ("GET", "HEAD", "DELETE", "OPTIONS", "POST", "PUT", "PATCH")


def method_body_drafts() -> Iterator[Draft]:
    """Every method with no body, a length-framed body and chunked bodies: all are valid,
    and a body must reach the backend whatever the method (RFC 9110 §9.3)."""
    te = transfer_encoding(b"chunked")
    framings: tuple[tuple[str, Sequence[bytes], bytes, bytes], ...] = (
        ("no body", [HOST], b"", b""),
        ("CL 0", [HOST, content_length(0)], b"", b""),
        ("CL body", [HOST, content_length(LENGTH)], SMUGGLED, SMUGGLED),
        ("chunked body", [HOST, te], chunked(SMUGGLED), SMUGGLED),
        ("two chunks", [HOST, te], chunk(SMUGGLED[:9]) + chunked(SMUGGLED[9:]), SMUGGLED),
        ("empty chunked body", [HOST, te], LAST_CHUNK, b""),
        ("chunked with trailer", [HOST, te], chunk(SMUGGLED) + b"0\r\nX-T: 1\r\n\r\n", SMUGGLED),
    )
    for method in METHODS:
        for label, fields, body, forwarded in framings:
            raw = build(method, fields, body)
            yield Draft(
                "method_body", f"{method} {label}", method, raw, Expect.ACCEPT, (forwarded,)
            )


# --- the corpus -------------------------------------------------------------------------------


def drafts() -> Iterator[Draft]:
    """Every draft of every category, in a stable order."""
    yield from te_drafts()
    yield from te_trailer_drafts()
    yield from cl_drafts()
    yield from chunk_drafts()
    yield from line_end_drafts()
    yield from control_drafts()
    yield from fold_drafts()
    yield from http10_drafts()
    yield from expect_drafts()
    yield from request_line_drafts()
    yield from header_name_drafts()
    yield from host_drafts()
    yield from method_body_drafts()


def unique(all_drafts: Iterator[Draft]) -> list[Draft]:
    """The drafts without repeats: categories overlap (a folded Transfer-Encoding is both
    a TE and an obs-fold attack), and the first category to draft a request keeps it. Two
    drafts of the same bytes that disagree on what is expected are a bug in the corpus."""

    def forward(draft: Draft) -> tuple[object, ...]:
        # What a forward of the draft must look like; nothing of a rejected one is.
        if draft.expect is Expect.REJECT:
            return (draft.expect,)
        return draft.expect, draft.bodies, draft.keep_alive, draft.host

    kept: dict[bytes, Draft] = {}
    for draft in all_drafts:
        first = kept.setdefault(draft.raw, draft)
        if forward(first) != forward(draft):
            msg = f"{first.name!r} and {draft.name!r} are the same request, expected otherwise"
            raise ValueError(msg)
    return list(kept.values())


def corpus() -> list[Case]:
    """All cases, numbered in a stable order; the number is in each case's bytes."""
    return [draft.with_id(f"{i:0{ID_WIDTH}d}") for i, draft in enumerate(unique(drafts()))]


# --------------------------------------------------------------------------------------------
# Strict RFC 9112 parsing (the backend's view)
# --------------------------------------------------------------------------------------------

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
_CASE_REF = re.compile(rf"/(case|follow|smuggled)-([0-9]{{{ID_WIDTH}}})")

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


# --------------------------------------------------------------------------------------------
# The strict recording backend
# --------------------------------------------------------------------------------------------

BACKEND_IDLE_S = 10.0
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


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


# --------------------------------------------------------------------------------------------
# The client side: one case on one connection
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------


class Outcome(enum.Enum):
    """What became of a case."""

    ACCEPTED = "accepted"  # 2xx; the backend saw exactly the expected request(s)
    REJECTED = "rejected"  # 4xx and closed; the backend saw nothing of it
    # 4xx and closed after the head had been streamed upstream: the backend saw only the
    # start of the request, cut off, and processed nothing (a streaming proxy finds a
    # broken chunked body only as it forwards it).
    REJECTED_MIDSTREAM = "rejected_midstream"
    BODY_DROPPED = "body_dropped"  # 2xx; a bodyless method's body did not reach the backend
    SMUGGLED = "smuggled"  # a /smuggled target reached the backend
    UNSAFE_FORWARD = "unsafe_forward"  # the backend saw something a proxy must never send
    ACCEPTED_INVALID = "accepted_invalid"  # 2xx for a request that must be rejected
    REJECTED_VALID = "rejected_valid"  # 4xx for a request that must be forwarded
    NOT_CLOSED = "not_closed"  # the connection served more after it had to close
    LEAKED = "leaked"  # rejected, yet (part of) the request reached the backend
    MISFORWARDED = "misforwarded"  # 2xx, but the backend saw other requests or bodies
    NO_ANSWER = "no_answer"  # no final response at all
    UNEXPECTED_STATUS = "unexpected_status"  # neither 2xx nor a rejection status


@dataclass(frozen=True)
class Verdict:
    """The outcome of one case, and what happened, in words."""

    outcome: Outcome
    detail: str = ""


def group_by_case(seen: Sequence[Seen]) -> tuple[dict[str, list[Seen]], list[Seen]]:
    """The backend's requests by the case id in their target; and those with none."""
    by_case: dict[str, list[Seen]] = {}
    unattributed = []
    for request in seen:
        ref = request.ref
        if ref is None:
            unattributed.append(request)
        else:
            by_case.setdefault(ref[1], []).append(request)
    return by_case, unattributed


def _kind(request: Seen) -> str:
    ref = request.ref
    return ref[0] if ref else ""


def _is_rejection(case: Case, status: int) -> bool:
    return 400 <= status < 500 or status in case.reject_statuses


def judge(case: Case, exchange: Exchange, seen: Sequence[Seen]) -> Verdict:
    """The outcome of ``case``, from what the proxy answered and what the backend saw of it."""
    smuggled = [r.target for r in seen if _kind(r) == "smuggled"]
    if smuggled:
        return Verdict(Outcome.SMUGGLED, f"backend saw {smuggled}")
    unsafe = [f"{r.method} {r.target}: {', '.join(r.violations)}" for r in seen if r.violations]
    if unsafe:
        return Verdict(Outcome.UNSAFE_FORWARD, "; ".join(unsafe))
    if not exchange.statuses:
        how = "closed" if exchange.closed else "left open"
        return Verdict(Outcome.NO_ANSWER, f"no response, connection {how}")
    status = exchange.statuses[0]
    if _is_rejection(case, status):
        return _judge_rejection(case, exchange, seen)
    if 200 <= status < 300:
        return _judge_acceptance(case, exchange, seen)
    # The proxy's own words (its error body) tell which of its paths answered.
    said = exchange.received.partition(b"\r\n\r\n")[2][:120]
    parts = [f"{r.method} {r.target} complete={r.complete}" for r in seen]
    detail = f"statuses {exchange.statuses}, body {said!r}; backend saw {parts}"
    return Verdict(Outcome.UNEXPECTED_STATUS, detail)


def _judge_rejection(case: Case, exchange: Exchange, seen: Sequence[Seen]) -> Verdict:
    if case.expect is Expect.ACCEPT:
        return Verdict(Outcome.REJECTED_VALID, f"statuses {exchange.statuses}")
    if len(exchange.statuses) > 1 or not exchange.closed:
        state = "closed" if exchange.closed else "left open"
        return Verdict(Outcome.NOT_CLOSED, f"statuses {exchange.statuses}, connection {state}")
    if any(r.complete for r in seen):
        parts = [f"{r.method} {r.target} complete={r.complete}" for r in seen]
        return Verdict(Outcome.LEAKED, f"status {exchange.statuses[0]}, backend saw {parts}")
    if seen:
        return Verdict(Outcome.REJECTED_MIDSTREAM, f"status {exchange.statuses[0]}")
    return Verdict(Outcome.REJECTED)


def _body_dropped(case: Case, request: Seen) -> bool:
    """A bodyless method's body that the proxy did not forward at all."""
    return (
        case.method in BODYLESS_METHODS
        and request.body == b""
        and request.framing == "none"
        and b"" not in case.bodies
    )


def _forwarding_problems(case: Case, exchange: Exchange, request: Seen, dropped: bool) -> list[str]:
    """How the one forwarded request differs from what the case frames."""
    problems = []
    if f"/case-{case.case_id}" not in request.target:
        problems.append(f"target {request.target!r}")
    if request.method != case.method:
        problems.append(f"method {request.method!r}, expected {case.method!r}")
    if case.host is not None and request.host != case.host:
        problems.append(f"Host {request.host!r}, expected {case.host!r}")
    if request.body not in case.bodies and not dropped:
        problems.append(f"body {request.body!r} ({request.framing}), expected {case.bodies[0]!r}")
    if not exchange.closed:
        # Only a proxy that lost track of where the requests end waits on.
        problems.append(f"connection left open after Connection: close ({exchange.statuses})")
    return problems


def _judge_follow_up(case: Case, exchange: Exchange, follows: Sequence[Seen]) -> Verdict:
    answered = exchange.statuses[1:]
    if case.keep_alive and (len(follows) != 1 or len(answered) != 1 or answered[0] >= 300):
        detail = f"follow-up: statuses {exchange.statuses}, backend saw it {len(follows)} times"
        return Verdict(Outcome.MISFORWARDED, detail)
    if not case.keep_alive and (follows or answered):
        detail = f"statuses {exchange.statuses}; backend saw the follow-up {len(follows)} times"
        return Verdict(Outcome.NOT_CLOSED, detail)
    return Verdict(Outcome.ACCEPTED)


def _judge_acceptance(case: Case, exchange: Exchange, seen: Sequence[Seen]) -> Verdict:
    if case.expect is Expect.REJECT:
        return Verdict(Outcome.ACCEPTED_INVALID, f"statuses {exchange.statuses}")
    forwarded = [r for r in seen if _kind(r) == "case"]
    if len(forwarded) != 1 or not forwarded[0].complete:
        parts = [f"{r.method} {r.target} complete={r.complete}" for r in forwarded]
        return Verdict(Outcome.MISFORWARDED, f"backend saw the case as {parts}")
    request = forwarded[0]
    dropped = request.body not in case.bodies and _body_dropped(case, request)
    problems = _forwarding_problems(case, exchange, request, dropped)
    if problems:
        return Verdict(Outcome.MISFORWARDED, "; ".join(problems))
    if dropped:
        # Whether the connection is kept after a dropped body is part of that defect.
        return Verdict(Outcome.BODY_DROPPED, f"{case.method} forwarded without its body")
    return _judge_follow_up(case, exchange, [r for r in seen if _kind(r) == "follow"])
