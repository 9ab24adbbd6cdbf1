"""HTTP/2 floods against a real proxy: each must be cut quickly or not hurt a benign client."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack
import pytest

from tests.integration.proxyproc import ProxyProcess, proxy_config
from tests.security import h2flood
from tests.security.h2flood import FloodResult

REPO_ROOT = Path(__file__).resolve().parents[2]

# The verdict's limits.
CUT_LIMIT_S = 10.0
RSS_GROWTH_LIMIT_BYTES = 50 * 1000 * 1000
P99_FACTOR = 2.0
P99_ALLOWANCE_S = 0.010

# Each flood runs for ATTACK_S at most. A flood still open then is judged on its harm alone:
# waiting the full CUT_LIMIT_S for each would not fit the suite's time budget.
ATTACK_S = 4.0
ATTACK_PROCESS_TIMEOUT_S = ATTACK_S + 20.0
BASELINE_S = 1.5
# The benign client keeps going at least this long after a flood starts, even one cut at
# once, so that harm that outlasts the attacking connection is seen too.
MIN_UNDER_ATTACK_S = 1.0
WARM_UP_REQUESTS = 20
BENIGN_PAUSE_S = 0.005
BENIGN_TIMEOUT_S = 5.0
RSS_SAMPLE_S = 0.05
# Time for the benign client and the RSS sampler to finish once told to stop.
SETTLE_TIMEOUT_S = BENIGN_TIMEOUT_S + 5.0


# --- Verdict: pure, table-tested below ---


@dataclass(frozen=True)
class FloodFigures:
    """What one flood did to the proxy and to the benign client alongside."""

    cut_after_s: float | None  # None: the attack's connections were still open at its end
    baseline_p99_s: float
    attack_p99_s: float | None  # None: no benign request completed during the attack
    benign_errors: int
    rss_growth_bytes: int


@dataclass(frozen=True)
class Verdict:
    """Whether a flood passes, and why."""

    passed: bool
    reason: str


def harmless_p99_limit(baseline_p99_s: float) -> float:
    """The benign p99 under attack that still counts as harmless."""
    return P99_FACTOR * baseline_p99_s + P99_ALLOWANCE_S


def judge_flood(figures: FloodFigures) -> Verdict:
    """A flood passes if the proxy cut it within CUT_LIMIT_S or it was harmless (benign p99
    within limit); in every case the benign client saw no error and RSS grew by less than
    RSS_GROWTH_LIMIT_BYTES."""
    if figures.benign_errors:
        return Verdict(False, f"{figures.benign_errors} benign requests failed")
    if figures.rss_growth_bytes >= RSS_GROWTH_LIMIT_BYTES:
        return Verdict(False, f"RSS grew by {mb(figures.rss_growth_bytes)}")
    if figures.cut_after_s is not None and figures.cut_after_s <= CUT_LIMIT_S:
        return Verdict(True, f"cut after {figures.cut_after_s:.2f} s")
    limit = harmless_p99_limit(figures.baseline_p99_s)
    if figures.attack_p99_s is None:
        return Verdict(False, "not cut, and no benign request completed under attack")
    if figures.attack_p99_s <= limit:
        return Verdict(True, "harmless")
    return Verdict(False, f"not cut, and benign p99 {ms(figures.attack_p99_s)} is over {ms(limit)}")


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def vmrss_bytes(status: str) -> int:
    """Resident set size from the text of /proc/<pid>/status."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    msg = "no VmRSS line"
    raise ValueError(msg)


def ms(seconds: float | None) -> str:
    """``1.23 ms``, or ``-`` for no value."""
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def mb(size: int) -> str:
    """``+1.2 MB`` (decimal megabytes, signed)."""
    return f"{size / 1e6:+.1f} MB"


def figure_line(
    result: FloodResult, figures: FloodFigures, baseline: BenignStats, benign: BenignStats
) -> str:
    """One line per flood: how it ended, what the benign client saw, RSS growth. The medians
    are shown too: they tell a proxy that is slow throughout from noise in the tail."""
    if figures.cut_after_s is None:
        ended = f"not cut in {result.ran_s:.1f} s"
    else:
        ended = f"cut after {figures.cut_after_s:.3f} s ({result.ended_by})"
    return (
        f"{result.attack}: {ended}, {result.frames_sent} frames sent | "
        f"benign p99 {ms(figures.attack_p99_s)} vs baseline {ms(figures.baseline_p99_s)} "
        f"(p50 {ms(percentile(benign.latencies_s, 0.5))} vs "
        f"{ms(percentile(baseline.latencies_s, 0.5))}), "
        f"{figures.benign_errors} errors in {benign.requests} requests | "
        f"RSS {mb(figures.rss_growth_bytes)}"
    )


VERDICT_CASES = [
    # FloodFigures(cut after, baseline p99, attack p99, benign errors, RSS growth), passes
    pytest.param(FloodFigures(0.5, 0.002, 0.500, 0, 1_000_000), True, id="cut-fast-though-slow"),
    pytest.param(FloodFigures(10.0, 0.002, 0.500, 0, 0), True, id="cut-at-limit"),
    pytest.param(FloodFigures(10.5, 0.002, 0.500, 0, 0), False, id="cut-late-and-harmful"),
    pytest.param(FloodFigures(10.5, 0.002, 0.003, 0, 0), True, id="cut-late-but-harmless"),
    pytest.param(FloodFigures(None, 0.002, 0.014, 0, 0), True, id="harmless-at-limit"),
    pytest.param(FloodFigures(None, 0.002, 0.0141, 0, 0), False, id="harmful"),
    pytest.param(FloodFigures(None, 0.002, None, 0, 0), False, id="no-benign-answer"),
    pytest.param(FloodFigures(0.1, 0.002, 0.002, 1, 0), False, id="cut-but-benign-error"),
    pytest.param(FloodFigures(None, 0.002, 0.002, 3, 0), False, id="harmless-but-errors"),
    pytest.param(FloodFigures(0.1, 0.002, 0.002, 0, 50_000_000), False, id="cut-but-rss-limit"),
    pytest.param(FloodFigures(None, 0.002, 0.002, 0, 49_999_999), True, id="rss-under-limit"),
    pytest.param(FloodFigures(None, 0.002, 0.002, 0, -5_000_000), True, id="rss-shrank"),
]


@pytest.mark.parametrize(("figures", "passed"), VERDICT_CASES)
def test_judge_flood(figures, passed) -> None:
    verdict = judge_flood(figures)
    assert verdict.passed is passed, verdict.reason


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.99, None),
        ([5.0], 0.99, 5.0),
        ([3.0, 1.0, 2.0], 0.5, 2.0),
        ([float(i) for i in range(1, 101)], 0.99, 99.0),
        ([float(i) for i in range(1, 201)], 0.99, 198.0),
        ([1.0, 2.0], 1.0, 2.0),
    ],
)
def test_percentile(values, fraction, expected) -> None:
    assert percentile(values, fraction) == expected


def test_vmrss_bytes() -> None:
    status = "Name:\tpython\nVmPeak:\t  99999 kB\nVmRSS:\t   25448 kB\nThreads:\t4\n"
    assert vmrss_bytes(status) == 25448 * 1024
    with pytest.raises(ValueError, match="VmRSS"):
        vmrss_bytes("Name:\tzombie\n")


@pytest.mark.parametrize(
    ("value", "prefix_bits", "encoded"),
    [
        # RFC 7541 C.1.1-C.1.3.
        (10, 5, b"\x0a"),
        (1337, 5, b"\x1f\x9a\x0a"),
        (42, 8, b"\x2a"),
        (127, 7, b"\x7f\x00"),
    ],
)
def test_hpack_int(value, prefix_bits, encoded) -> None:
    assert h2flood.hpack_int(value, prefix_bits) == encoded


def test_request_block_is_valid_hpack() -> None:
    block = h2flood.request_block("127.0.0.1:8080", "/slow?s=5", "POST")
    assert hpack.Decoder().decode(block) == [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/slow?s=5"),
        (":authority", "127.0.0.1:8080"),
    ]


def test_bomb_references_its_table_entry() -> None:
    decoder = hpack.Decoder()
    value = b"b" * h2flood.BOMB_VALUE_BYTES
    insert = h2flood.hpack_literal_new_name(b"x-bomb", value, indexed=True)
    reference = h2flood.hpack_indexed(h2flood.FIRST_DYNAMIC_INDEX)
    assert decoder.decode(insert + reference * 3, raw=True) == [(b"x-bomb", value)] * 4


@pytest.mark.parametrize(
    ("buf", "start", "copies"),
    [
        (b"", 0, 0),
        (b"xab", 0, 0),
        (b"abababx", 0, 3),
        (b"abababx", 2, 2),
        (b"ab" * 1000 + b"a", 0, 1000),
        (b"ab" * 77, 2, 76),
    ],
)
def test_copies_at(buf, start, copies) -> None:
    assert h2flood.copies_at(buf, b"ab", start) == copies


def test_frame_layout() -> None:
    assert h2flood.frame(h2flood.PING, h2flood.ACK, 0, b"12345678") == (
        b"\x00\x00\x08\x06\x01\x00\x00\x00\x0012345678"
    )


# --- Measuring ---


@dataclass
class BenignStats:
    """Latencies of the benign requests that succeeded, and the failures."""

    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Requests sent."""
        return len(self.latencies_s) + len(self.errors)


class BenignClient:
    """A well-behaved HTTP/2 client: one h2c connection, one GET at a time.

    Built on the h2 state machine rather than httpx, which costs twice the CPU per request:
    on a small machine that CPU time would show up as latency the proxy did not cause.
    """

    def __init__(self, host: str, port: int, path: str) -> None:
        self.address = (host, port)
        self.request = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", f"{host}:{port}"),
            (":path", path),
        ]
        self.sock: socket.socket | None = None
        self.conn = h2.connection.H2Connection()

    def connect(self) -> None:
        """Open a new connection (after an error the old one cannot be trusted)."""
        self.close()
        self.sock = socket.create_connection(self.address, timeout=BENIGN_TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def get(self) -> int:
        """Send the GET and read the whole response; return its status.

        Raises OSError (timeouts included), h2's ProtocolError, or BenignError.
        """
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        deadline = time.monotonic() + BENIGN_TIMEOUT_S
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, self.request, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status = 0
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                raise BenignError("the proxy closed the connection")
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamReset):
                    raise BenignError(f"stream reset: {event.error_code!r}")
                elif isinstance(event, h2.events.ConnectionTerminated):
                    raise BenignError(f"GOAWAY: {event.error_code!r}")
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    self.sock.sendall(self.conn.data_to_send())
                    return status
            self.sock.sendall(self.conn.data_to_send())
        raise BenignError(f"no response in {BENIGN_TIMEOUT_S} s")

    def close(self) -> None:
        """Close the connection, if open."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class BenignError(Exception):
    """The benign client did not get its response."""


def benign_load(client: BenignClient, stop: threading.Event) -> BenignStats:
    """Steady requests, one at a time with a short pause, until ``stop`` is set."""
    stats = BenignStats()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            status = client.get()
        except (OSError, h2.exceptions.ProtocolError, BenignError) as err:
            stats.errors.append(f"{type(err).__name__}: {err}")
            client.close()
        else:
            if status == 200:
                stats.latencies_s.append(time.perf_counter() - started)
            else:
                stats.errors.append(f"status {status}")
        stop.wait(BENIGN_PAUSE_S)
    return stats


def benign_for(client: BenignClient, seconds: float) -> BenignStats:
    """``benign_load`` for ``seconds``."""
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        return benign_load(client, stop)
    finally:
        timer.cancel()


def proxy_rss(pid: int) -> int:
    """The proxy process's resident set size now."""
    return vmrss_bytes(Path(f"/proc/{pid}/status").read_text())


def peak_rss(pid: int, stop: threading.Event) -> int:
    """The largest RSS of ``pid`` sampled until ``stop`` is set, or until it has exited
    (then the benign client's errors tell the story)."""
    peak = proxy_rss(pid)
    while not stop.wait(RSS_SAMPLE_S):
        try:
            peak = max(peak, proxy_rss(pid))
        except (OSError, ValueError):  # gone, or a zombie without VmRSS
            break
    return peak


def run_attack_process(attack: str, proxy: ProxyProcess) -> FloodResult:
    """Run the attack in its own interpreter, so that its CPU use does not slow the benign
    client's thread through the GIL."""
    host, port = proxy.host_port("web")
    command = [sys.executable, "-m", "tests.security.h2flood", attack, host, str(port)]
    done = subprocess.run(
        [*command, "--seconds", str(ATTACK_S)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=ATTACK_PROCESS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{attack} failed:\n{done.stderr}"
    return FloodResult.from_json(done.stdout)


# --- The floods ---


def flood_config(attacked: str, benign: str) -> dict[str, object]:
    """The proxy under attack: the benign client's path (``/benign``) goes to a backend of
    its own, every other path to the attacked one."""
    config = proxy_config([attacked])
    listener = config["listeners"][0]
    del listener["cluster"]
    to_benign = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/benign"}}],
        "backends": [{"cluster": "benign"}],
    }
    listener["routes"] = [
        {
            "name": "any",
            "hosts": ["*"],
            "rules": [to_benign, {"backends": [{"cluster": "backend"}]}],
        }
    ]
    config["clusters"].append({"name": "benign", "endpoints": [benign]})
    return config


@pytest.mark.parametrize("attack", list(h2flood.ATTACKS))
def test_flood_is_cut_or_harmless(attack, flood_backend, benign_backend, start_proxy) -> None:
    proxy = start_proxy(flood_config(flood_backend.address, benign_backend.address))
    client = BenignClient(*proxy.host_port("web"), "/benign")
    with ThreadPoolExecutor(2) as pool:
        for _ in range(WARM_UP_REQUESTS):
            assert client.get() == 200
        baseline = benign_for(client, BASELINE_S)
        assert not baseline.errors, baseline.errors
        rss_before = proxy_rss(proxy.pid)
        stop = threading.Event()
        under_attack = pool.submit(benign_load, client, stop)
        rss_peak = pool.submit(peak_rss, proxy.pid, stop)
        started = time.monotonic()
        try:
            result = run_attack_process(attack, proxy)
            stop.wait(MIN_UNDER_ATTACK_S - (time.monotonic() - started))
        finally:
            stop.set()
        benign = under_attack.result(timeout=SETTLE_TIMEOUT_S)
        rss_growth = rss_peak.result(timeout=SETTLE_TIMEOUT_S) - rss_before
    client.close()
    figures = FloodFigures(
        cut_after_s=result.cut_after_s,
        baseline_p99_s=percentile(baseline.latencies_s, 0.99) or 0.0,
        attack_p99_s=percentile(benign.latencies_s, 0.99),
        benign_errors=len(benign.errors),
        rss_growth_bytes=rss_growth,
    )
    line = figure_line(result, figures, baseline, benign)
    verdict = judge_flood(figures)
    print(f"\n{line} => {'pass' if verdict.passed else 'FAIL'}: {verdict.reason}")
    assert result.frames_sent > 0, f"the attack sent nothing: {result}"
    assert verdict.passed, f"{line}; {verdict.reason}; errors: {benign.errors[:3]}"
