"""Line-syntax cases: bare CR and LF as line ends, control characters, obs-fold."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tests.security.smuggling.model import (
    CASE_TARGET,
    CL_TE_TAIL,
    CRLF,
    HOST,
    LAST_CHUNK,
    LENGTH,
    SMUGGLED,
    Draft,
    Expect,
    build,
    chunk,
    chunked,
    content_length,
    framed,
    transfer_encoding,
)
from tests.security.smuggling.te import Layout, te_request

# --- line endings ---------------------------------------------------------------------------


def lines_request(method: str, ends: dict[str, bytes], framing: str, prefix: bytes = b"") -> bytes:
    """A request whose line ends are chosen per line: request-line, host, framing, pad, blank."""
    framing_line, body = framed(framing)
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
