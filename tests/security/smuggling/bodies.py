"""Content-Length and chunked-body cases: values, duplicates, look-alike names, chunk lines."""

from __future__ import annotations

from collections.abc import Iterator

from tests.security.smuggling.model import (
    HOST,
    LAST_CHUNK,
    LENGTH,
    SMUGGLED,
    Draft,
    Expect,
    build,
    chunk,
    content_length,
    transfer_encoding,
)

# --- Content-Length -------------------------------------------------------------------------

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
