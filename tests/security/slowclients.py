"""Slow-client attacks (slow head, body, read), a benign client, RSS sampling and a backend."""

# Standard library only: benches/slow_clients.py runs it with any Python 3.11.
#
# Run as a program it is one of two children of a measurement:
#
#   slowclients.py backend --port P     the backend every target forwards to
#   slowclients.py attack --kind K ...  the attacking connections; prints a JSON report
#
# Both run in their own processes so that neither the attack nor the backend shares an
# interpreter (and its lock) with the benign client, whose latencies are measured.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.client
import json
import math
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Json = dict[str, Any]

HELLO = b"hello\n"
"""What the backend answers to every request but `LARGE_PATH`."""
LARGE_PATH = "/large"
"""The backend answers this path with a large body (`--large-bytes`, or ``?bytes=N``)."""
LARGE_BYTES = 2 * 1024 * 1024
ATTACKS = ("slow_head", "slow_body", "slow_read")
SAMPLE_INTERVAL_S = 0.5
"""How often the RSS sampler and the attack's kernel-state watcher look."""
CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 5.0
BENIGN_TIMEOUT_S = 5.0
TCP_ESTABLISHED = 0x01
LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close() sends a reset and leaves nothing in TIME_WAIT."""
SMALLEST_RCVBUF = 1024
"""Asked of SO_RCVBUF by the slow reader; Linux rounds it up to its minimum (2,304 bytes)."""


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------
# Pure helpers and verdicts
# ---------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th quantile (0 <= q <= 1), linearly interpolated; None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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


def success_ratio(ok: int, sent: int) -> float:
    """Share of requests that succeeded; 1.0 when none were sent."""
    return ok / sent if sent else 1.0


def benign_problems(ok: int, sent: int, min_ratio: float, min_sent: int) -> list[str]:
    """What is wrong with the benign client's record: too few requests, or too many failed."""
    problems = []
    if sent < min_sent:
        problems.append(f"only {sent} benign requests were sent (expected at least {min_sent})")
    ratio = success_ratio(ok, sent)
    if ratio < min_ratio:
        problems.append(
            f"benign success {ratio:.2%} ({sent - ok} of {sent} failed) is under {min_ratio:.2%}"
        )
    return problems


def rss_problems(
    start_kb: int, peak_kb: int, after_kb: int, *, ceiling_kb: int, slack_kb: int
) -> list[str]:
    """What is wrong with the target's memory: over `ceiling_kb` at some point, or not back
    within `slack_kb` of where it started once the attack was over."""
    problems = []
    if peak_kb > ceiling_kb:
        problems.append(f"RSS peaked at {peak_kb / 1024:.1f} MiB (limit {ceiling_kb / 1024:.0f})")
    if after_kb > start_kb + slack_kb:
        problems.append(
            f"RSS after the attack {after_kb / 1024:.1f} MiB, more than "
            f"{slack_kb / 1024:.0f} MiB over the {start_kb / 1024:.1f} MiB it started at"
        )
    return problems


@dataclass(frozen=True)
class CutWindow:
    """When a connection held by a slow client should be cut: `timeout_s` after it was
    opened, give or take the scheduling and sampling delays."""

    timeout_s: float
    early_s: float = 0.5
    late_s: float = 2.0
    min_share: float = 0.95

    def in_time(self, cut_after_s: float) -> bool:
        return self.timeout_s - self.early_s <= cut_after_s <= self.timeout_s + self.late_s


def cut_problems(
    connections: list[tuple[float, float | None, str]], attack_s: float, window: CutWindow
) -> list[str]:
    """Whether the target cut the attack's connections after about its timeout.

    `connections` are (opened at, cut after or None, how) in seconds from the attack's
    start. Those opened early enough that the timeout and the lateness allowed had passed
    before the attack ended are judged: at least `min_share` of them must have been cut
    within the window.
    """
    latest_open = attack_s - window.timeout_s - window.late_s
    judged = [(opened, cut) for opened, cut, _ in connections if opened <= latest_open]
    if not judged:
        return [f"no connection was open long enough to judge (attack of {attack_s:g} s)"]
    in_time = [cut for _, cut in judged if cut is not None and window.in_time(cut)]
    share = len(in_time) / len(judged)
    if share >= window.min_share:
        return []
    cuts = sorted(cut for _, cut in judged if cut is not None)
    median = f"{percentile(cuts, 0.5):.2f} s" if cuts else "-"
    return [
        f"{len(in_time)} of {len(judged)} connections ({share:.0%}) were cut within "
        f"{window.timeout_s - window.early_s:g}-{window.timeout_s + window.late_s:g} s "
        f"(needed {window.min_share:.0%}); not cut at all: {len(judged) - len(cuts)}, "
        f"median time to cut {median}"
    ]


# ---------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """(method, target, headers with lower-case names) of an HTTP/1 request head."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, target, headers


def large_size(target: str, default: int) -> int | None:
    """The body size asked for by `target` if it is `LARGE_PATH` (``?bytes=N``), else None."""
    path, _, query = target.partition("?")
    if path != LARGE_PATH:
        return None
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "bytes" and value.isdigit():
            return int(value)
    return default


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    """Read and drop a request body as it comes (Content-Length or chunked)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            await reader.readexactly(size + 2)
    remaining = int(headers.get("content-length") or 0)
    while remaining:
        chunk = await reader.read(min(remaining, 65536))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", remaining)
        remaining -= len(chunk)


async def serve_backend(port: int, large_bytes: int) -> None:
    """HTTP/1.1 with keep-alive on 127.0.0.1:`port`: `HELLO` to every request (bodies are
    read as they arrive), a body of zeros to `LARGE_PATH`, written as fast as the reader
    takes it (at most 64 KiB queued per connection)."""
    piece = bytes(16384)
    small = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
        + f"content-length: {len(HELLO)}\r\n\r\n".encode()
        + HELLO
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.set_write_buffer_limits(high=65536)
        ended = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)
        with contextlib.suppress(*ended):
            while True:
                method, target, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
                await read_body(reader, headers)
                size = large_size(target, large_bytes)
                if size is None:
                    writer.write(small)
                else:
                    head = "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                    writer.write(f"{head}content-length: {size}\r\n\r\n".encode())
                    while size > 0 and method != "HEAD":
                        writer.write(piece[: min(size, len(piece))])
                        size -= len(piece)
                        await writer.drain()
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096, limit=65536)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def backend_argv(port: int, large_bytes: int = LARGE_BYTES) -> list[str]:
    """The command line of the backend, run with this interpreter."""
    return [sys.executable, str(Path(__file__).resolve()), "backend", "--port", str(port),
            "--large-bytes", str(large_bytes)]  # fmt: skip


def start_backend(
    large_bytes: int = LARGE_BYTES, timeout: float = 15.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the backend on a free loopback port; (its process, ``127.0.0.1:port``) once it
    listens. The caller stops it by its PID."""
    proc = subprocess.Popen(
        backend_argv(0, large_bytes), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode() if ready else ""
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        msg = f"the backend did not start within {timeout:g} s: {line!r}"
        raise RuntimeError(msg)
    address = line.split()[-1]
    wait_http_hello(f"http://{address}/", proc, timeout)
    return proc, address


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit; only this PID is signalled."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stdout is not None:
        proc.stdout.close()


def wait_http_hello(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until GET `url` answers 200 with `HELLO`; raise if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"process {proc.pid} exited with {proc.returncode} before {url} answered"
            raise RuntimeError(msg)
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200 and resp.read() == HELLO:
                    return
                last = f"status {resp.status}"
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        time.sleep(0.1)
    msg = f"{url} did not answer 200 {HELLO!r} within {timeout:g} s ({last})"
    raise RuntimeError(msg)


# ---------------------------------------------------------------------------
# The attacks (run in their own process: `slowclients.py attack`)
# ---------------------------------------------------------------------------


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
        args = [sys.executable, str(Path(__file__).resolve()), "attack", "--target", target]
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


def attack_main(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    # The annotations are strings (postponed evaluation): "str", "int" or "float".
    convert: dict[str, Callable[[Any], Any]] = {"str": str, "int": int, "float": float}
    fields = dataclasses.fields(AttackPlan)
    plan = AttackPlan(**{f.name: convert[str(f.type)](getattr(args, f.name)) for f in fields})
    host, _, port = args.target.rpartition(":")
    report = asyncio.run(Attack(host, int(port), plan).run())
    text = json.dumps(report)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


# ---------------------------------------------------------------------------
# The benign client
# ---------------------------------------------------------------------------


@dataclass
class BenignReport:
    """What the benign client saw: every request's outcome and latency."""

    sent: int = 0
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def success_ratio(self) -> float:
        return success_ratio(self.ok, self.sent)

    def summary(self) -> Json:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "success_ratio": self.success_ratio,
            "failures": dict(self.failures),
            "p50_ms": percentile(self.latencies_ms, 0.5),
            "p99_ms": percentile(self.latencies_ms, 0.99),
            "max_ms": max(self.latencies_ms, default=None),
        }


class BenignClient:
    """Steady, well-behaved requests alongside an attack, from three threads: GET over a
    keep-alive connection, POST with a small body over another, and GET on a new
    connection each time. Each sends `rate` requests a second; success is 200 with `HELLO`
    within `BENIGN_TIMEOUT_S`."""

    def __init__(self, host: str, port: int, rate: float = 20.0) -> None:
        self.host, self.port, self.interval = host, port, 1.0 / rate
        self.report = BenignReport()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [
            threading.Thread(target=self.loop, args=(kind,), name=f"benign-{kind}", daemon=True)
            for kind in ("keepalive_get", "keepalive_post", "new_connection_get")
        ]

    def __enter__(self) -> BenignClient:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join(BENIGN_TIMEOUT_S + 1)

    def loop(self, kind: str) -> None:
        conn: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        while not self.done.is_set():
            if conn is None or kind == "new_connection_get":
                conn = http.client.HTTPConnection(self.host, self.port, timeout=BENIGN_TIMEOUT_S)
            started = time.monotonic()
            failure = self.request(conn, kind)
            elapsed_ms = (time.monotonic() - started) * 1000
            if failure or kind == "new_connection_get":
                conn.close()
                conn = None
            with self.lock:
                self.report.sent += 1
                if failure:
                    self.report.failures[failure] += 1
                else:
                    self.report.ok += 1
                    self.report.latencies_ms.append(elapsed_ms)
            next_at = max(next_at + self.interval, time.monotonic())
            self.done.wait(next_at - time.monotonic())
        if conn is not None:
            conn.close()

    @staticmethod
    def request(conn: http.client.HTTPConnection, kind: str) -> str | None:
        """Send one request; None if it succeeded, else why it failed."""
        try:
            if kind == "keepalive_post":
                conn.request("POST", "/benign", body=b"x" * 64)
            elif kind == "new_connection_get":
                conn.request("GET", "/benign", headers={"Connection": "close"})
            else:
                conn.request("GET", "/benign")
            resp = conn.getresponse()
            body = resp.read()
        except TimeoutError:
            return "timeout"
        except (OSError, http.client.HTTPException) as err:
            return type(err).__name__
        if resp.status != 200:
            return f"status {resp.status}"
        return None if body == HELLO else "wrong body"


# ---------------------------------------------------------------------------
# Memory of the target
# ---------------------------------------------------------------------------


def vm_rss_kb(pids: Iterable[int]) -> int:
    """VmRSS summed over the processes (/proc/PID/status), in KiB; gone ones count 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


class RssSampler:
    """Samples the VmRSS of the processes `pids()` names every `SAMPLE_INTERVAL_S`."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)

    def loop(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_INTERVAL_S)

    def sample(self) -> int:
        kb = vm_rss_kb(self.pids())
        self.samples.append((round(time.monotonic() - self.started, 2), kb))
        return kb

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)


# ---------------------------------------------------------------------------
# One measurement: an attack, the benign client alongside, the target's memory
# ---------------------------------------------------------------------------


@dataclass
class Measurement:
    """One attack on one target, with what the benign client and the RSS sampler saw."""

    attack: Json
    benign: Json
    rss_start_kb: int
    rss_peak_kb: int
    rss_after_kb: int
    after_s: float
    rss_samples: list[tuple[float, int]]
    attack_s: float

    def to_json(self) -> Json:
        return asdict(self)


def measure(
    host: str,
    port: int,
    pids: Callable[[], list[int]],
    run_attack: Callable[[], Json],
    *,
    after_s: float,
    settled: Callable[[int, int], bool] | None = None,
    benign_rate: float = 20.0,
) -> Measurement:
    """Run the benign client and the RSS sampler while `run_attack()` (which blocks until
    the attack is over and returns its report) runs; then keep sampling for `after_s`
    (less once `settled(start_kb, now_kb)` holds, if given)."""
    rss_start = vm_rss_kb(pids())
    with RssSampler(pids) as sampler:
        with BenignClient(host, port, benign_rate) as benign:
            time.sleep(0.5)
            started = time.monotonic()
            report = run_attack()
            attack_s = time.monotonic() - started
        ends = time.monotonic() + after_s
        after = sampler.sample()
        while time.monotonic() < ends and not (settled and settled(rss_start, after)):
            time.sleep(SAMPLE_INTERVAL_S)
            after = sampler.sample()
        waited = after_s - max(0.0, ends - time.monotonic())
    return Measurement(
        attack=report,
        benign=benign.report.summary(),
        rss_start_kb=rss_start,
        rss_peak_kb=max(sampler.peak_kb, rss_start),
        rss_after_kb=after,
        after_s=round(waited, 2),
        rss_samples=sampler.samples,
        attack_s=round(attack_s, 2),
    )


def run_slowhttptest(argv: list[str], csv: Path, output: Path, attack_s: float) -> Json:
    """Run slowhttptest (its `argv`, from `slowhttptest_argv`) for `attack_s`, interrupt it,
    and return its counts from `csv` and its `output`; stopped by its PID if it does not
    end."""
    csv.unlink(missing_ok=True)
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            proc.wait(attack_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # it writes its report and exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    counts = parse_slowhttptest_csv(csv.read_text() if csv.exists() else "")
    return counts | parse_slowhttptest_status(output.read_text(errors="replace"))


def run_attack_process(argv: list[str], out: Path, timeout: float, cpu: int | None = None) -> Json:
    """Run `slowclients.py attack` (its `argv`, writing to `out`), wait for it, return its
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


# ---------------------------------------------------------------------------
# slowhttptest (Debian's package), the independent attacker
# ---------------------------------------------------------------------------

SLOWHTTPTEST_MODES = {"slow_head": "-H", "slow_body": "-B", "slow_read": "-X"}


SLOWHTTPTEST_LENGTH_FACTOR = 10
"""slowhttptest ends its slow requests itself as its test length (-l) nears, and counts
them as closed: it is given this many times the attack's length and interrupted (SIGINT)
when the attack is over, so that the connections it counts as closed are the target's."""


def slowhttptest_argv(exe: str, plan: AttackPlan, url: str, out_prefix: Path) -> list[str]:
    """slowhttptest running `plan` (its mode, connections, interval, rate) against `url`,
    writing per-second socket counts to ``out_prefix.csv``; to be interrupted after
    `plan.duration_s` (see `SLOWHTTPTEST_LENGTH_FACTOR`)."""
    length = math.ceil(plan.duration_s * SLOWHTTPTEST_LENGTH_FACTOR)
    argv = [exe, SLOWHTTPTEST_MODES[plan.kind], "-c", str(plan.connections)]
    argv += ["-l", str(length), "-i", f"{plan.interval_s:g}"]
    argv += ["-r", f"{plan.open_rate:g}", "-g", "-o", str(out_prefix), "-v", "1"]
    if plan.kind == "slow_body":
        argv += ["-s", str(plan.body_length)]
    if plan.kind == "slow_read":
        argv += ["-z", str(plan.read_bytes), "-n", f"{plan.interval_s:g}", "-k", "1"]
        url = f"{url.rstrip('/')}{LARGE_PATH}?bytes={plan.large_bytes}"
    return [*argv, "-u", url]


def parse_slowhttptest_csv(text: str) -> Json:
    """slowhttptest's per-second counts (``Seconds,Closed,Pending,Connected,Service
    Available``): the connections closed by the end, the most connected at once, and the
    share of seconds its own probe found the service available."""
    rows = []
    for line in text.strip().splitlines()[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 5 and cells[0].isdigit():
            rows.append(cells)
    if not rows:
        return {"seconds": 0, "closed": 0, "peak_connected": 0, "available_share": None}
    # The column holds the connection count when the probe got an answer (to draw it on
    # the same chart), else 0.
    available = [r[4] not in ("0", "NO") for r in rows]
    return {
        "seconds": int(rows[-1][0]),
        "closed": int(rows[-1][1]),
        "peak_connected": max(int(r[3]) for r in rows),
        "available_share": sum(available) / len(available),
    }


def parse_slowhttptest_status(output: str) -> Json:
    """What slowhttptest's output says at its end: the closed and errored connections of
    its last status report, why it exited and at which second.

    Its CSV counts only connections it saw closed; one it finds reset when it next sends
    is an error instead. When the target closes the last ones at once, it exits ("No open
    connections left") before counting them: then every connection was cut.
    """
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    found: Json = {}
    for name, key in (("closed", "closed"), ("error", "errors")):
        values = re.findall(rf"(?m)^{name}:\s+(\d+)\s*$", plain)
        if values:
            found[key] = int(values[-1])
    exit_status = re.search(r"(?m)^Exit status:\s*(.+?)\s*$", plain)
    if exit_status:
        found["exit_status"] = exit_status.group(1)
    ended = re.search(r"(?m)^Test ended on (\d+)\w* second", plain)
    if ended:
        found["ended_s"] = int(ended.group(1))
    return found


def slowhttptest_cut(status: Json, connections: int) -> int:
    """How many of its `connections` the target cut, from `parse_slowhttptest_status`."""
    if status.get("exit_status") == "No open connections left":
        return connections
    return int(status.get("closed", 0)) + int(status.get("errors", 0))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    backend = sub.add_parser("backend", help="serve HELLO and large bodies on 127.0.0.1")
    backend.add_argument("--port", type=int, default=0)
    backend.add_argument("--large-bytes", type=int, default=LARGE_BYTES)
    attack = sub.add_parser("attack", help="hold slow connections; print a JSON report")
    attack.add_argument("--target", required=True, help="host:port (loopback)")
    attack.add_argument("--kind", choices=ATTACKS, required=True)
    for spec in dataclasses.fields(AttackPlan):
        if spec.name != "kind":
            required = spec.default is dataclasses.MISSING
            default = None if required else spec.default
            flag = f"--{spec.name.replace('_', '-')}"
            attack.add_argument(flag, required=required, default=default)
    attack.add_argument("--out", help="write the report here instead of stdout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    if args.command == "backend":
        raise_open_files_limit()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_backend(args.port, args.large_bytes))
        return 0
    return attack_main(args)


if __name__ == "__main__":
    sys.exit(main())
