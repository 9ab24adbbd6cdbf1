"""Field cases: Expect values, non-token characters in field names, Host fields."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tests.security.smuggling.model import (
    ABSOLUTE,
    CASE_TARGET,
    HOST,
    ID_SLOT,
    LENGTH,
    SMUGGLED,
    Draft,
    Expect,
    build,
    content_length,
    framed,
    transfer_encoding,
)
from tests.security.smuggling.te import Layout, te_request

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
            framing_line, body = framed(framing)
            raw = build("POST", [HOST, b"Expect: " + value, framing_line], body)
            name = f"value={value!r} {framing} POST"
            yield Draft("expect", name, "POST", raw, expect, (SMUGGLED,))
    for framing in ("length", "chunked"):
        framing_line, body = framed(framing)
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
