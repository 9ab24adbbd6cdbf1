"""Request-line cases: HTTP/1.0 framing, malformed request lines, bodies on every method."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tests.security.smuggling.model import (
    CASE_TARGET,
    CL_TE_TAIL,
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
    transfer_encoding,
)

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
