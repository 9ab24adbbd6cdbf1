"""Transfer-Encoding cases: spellings, field syntax, duplicates and trailers, in every layout."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence

from tests.security.smuggling.model import (
    CL_TE_TAIL,
    HOST,
    SMUGGLED,
    Draft,
    Expect,
    build,
    chunk,
    chunked,
    content_length,
    transfer_encoding,
)


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
