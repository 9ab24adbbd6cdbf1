"""Slow clients against `meshpy proxy run`: cut after the listener's timeouts, others served."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.proxyproc import ProxyProcess, proxy_config
from tests.security.slowclients import (
    ATTACKS,
    AttackPlan,
    CutWindow,
    Measurement,
    benign_problems,
    cut_problems,
    largest_send_buffer,
    measure,
    parse_slowhttptest_csv,
    parse_slowhttptest_status,
    percentile,
    reply_status,
    rss_problems,
    run_attack_process,
    server_side_states,
    slowhttptest_argv,
    slowhttptest_cut,
    success_ratio,
    vm_rss_kb,
)

ATTACK_TIMEOUTS = {"request_head": "2s", "body_progress": "2s", "send": "2s"}
"""The listener timeouts the attacks run into; each attack's connections are cut after 2 s."""
SEND_ATTACK_TIMEOUTS = True
"""False leaves them out of the config: the attacks then meet the proxy's other defaults."""
TIMEOUT_S = 2.0
CONNECTIONS = 150
ATTACK_S = 7.0
INTERVAL_S = {"slow_head": 1.0, "slow_body": 3.0, "slow_read": 1.0}
"""slow_head: a line a second, under a whole-head deadline; slow_body: pauses longer than
body_progress; slow_read: 5 bytes a second, so the proxy's writes stall for longer than send."""
LATE_S = {"slow_head": 2.0, "slow_body": 2.0, "slow_read": 3.5}
"""How long after its timeout a connection may still be cut. slow_read's send timeout
starts only once the proxy's writes stall, when the kernel's buffers for the connection
are full (up to 4 MiB each here): filling them for 150 connections takes the backend
and the proxy a second or more, longer on a loaded machine. With 2 s, a fresh-clone run
cut 84% in time (median 3.48 s after opening) and left none uncut."""
MIN_BENIGN_SUCCESS = 0.995
MIN_BENIGN_REQUESTS = 200  # three clients at 20 requests/s for the 7 s of the attack: ~420
RSS_CEILING_KB = 150 * 1024
RSS_SLACK_KB = 20 * 1024
SETTLE_S = 5.0
"""How long the proxy has, after the attack, to come back within RSS_SLACK_KB of its start."""


def attacked_proxy(start_proxy: Callable[..., ProxyProcess], backend: str) -> ProxyProcess:
    listener = {"timeouts": ATTACK_TIMEOUTS} if SEND_ATTACK_TIMEOUTS else {}
    return start_proxy(proxy_config([backend], listener=listener))


def describe(m: Measurement) -> str:
    attack = {k: m.attack[k] for k in ("opened", "cut", "median_cut_after_s", "how", "replies")}
    rss = f"RSS start/peak/after {m.rss_start_kb}/{m.rss_peak_kb}/{m.rss_after_kb} KiB"
    return f"attack {json.dumps(attack)}; benign {json.dumps(m.benign)}; {rss}"


@pytest.mark.slow
@pytest.mark.timeout(45)
@pytest.mark.parametrize("kind", ATTACKS)
def test_slow_clients_are_cut_while_others_are_served(
    kind: str, slow_client_backend: str, start_proxy: Callable[..., ProxyProcess], tmp_path: Path
) -> None:
    proxy = attacked_proxy(start_proxy, slow_client_backend)
    host, port = proxy.host_port()
    plan = AttackPlan(kind, CONNECTIONS, ATTACK_S, INTERVAL_S[kind])
    out = tmp_path / "attack.json"
    m = measure(
        host,
        port,
        lambda: [proxy.pid],
        lambda: run_attack_process(plan.argv(f"{host}:{port}", out), out, ATTACK_S + 20),
        after_s=SETTLE_S,
        settled=lambda start_kb, now_kb: now_kb <= start_kb + RSS_SLACK_KB,
    )

    assert proxy.proc.poll() is None, f"the proxy exited:\n{proxy.log()[-2000:]}"
    problems = [
        *benign_problems(m.benign["ok"], m.benign["sent"], MIN_BENIGN_SUCCESS, MIN_BENIGN_REQUESTS),
        *rss_problems(
            m.rss_start_kb,
            m.rss_peak_kb,
            m.rss_after_kb,
            ceiling_kb=RSS_CEILING_KB,
            slack_kb=RSS_SLACK_KB,
        ),
        *cut_problems(
            m.attack["connections"],
            m.attack["seconds"],
            CutWindow(TIMEOUT_S, late_s=LATE_S[kind]),
        ),
    ]
    assert not problems, "\n".join([*problems, describe(m)])


# ---------------------------------------------------------------------------
# The verdicts and parsers the attacks and the benchmark rely on
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([7.0], 0.99, 7.0),
        ([1.0, 2.0, 3.0], 0.5, 2.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.5),
        ([float(i) for i in range(101)], 0.99, 99.0),
        ([1.0, 2.0], 1.0, 2.0),
    ],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "eof"),
        (b"HTTP/1.1 408 Request Timeout\r\n", "408"),
        (b"HTTP/1.0 504 Gateway Timeout\r\n", "504"),
        (b"HTTP/1.1 2", "data"),
        (b"SSH-2.0\r\n", "data"),
    ],
)
def test_reply_status(data: bytes, expected: str) -> None:
    assert reply_status(data) == expected


PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0
   3: 0100007F:1F90 0100007F:D432 04 00000A00:00000000 01:00000014 00000000     0
   4: 0100007F:1F91 0100007F:D433 01 00000000:00000000 00:00000000 00000000     0
"""


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        (0x1F90, {0: 0x0A, 0xD431: 0x01, 0xD432: 0x04}),  # listening, established, FIN_WAIT1
        (0x1F91, {0xD433: 0x01}),
        (0x1F92, {}),
    ],
)
def test_server_side_states(port: int, expected: dict[int, int]) -> None:
    assert server_side_states(PROC_NET_TCP, port) == expected


@pytest.mark.parametrize(("ok", "sent", "expected"), [(0, 0, 1.0), (199, 200, 0.995), (0, 10, 0.0)])
def test_success_ratio(ok: int, sent: int, expected: float) -> None:
    assert success_ratio(ok, sent) == expected


@pytest.mark.parametrize(
    ("ok", "sent", "expected"),
    [
        (1000, 1000, []),
        (995, 1000, []),
        (994, 1000, ["benign success 99.40% (6 of 1000 failed) is under 99.50%"]),
        (10, 10, ["only 10 benign requests were sent (expected at least 100)"]),
    ],
)
def test_benign_problems(ok: int, sent: int, expected: list[str]) -> None:
    assert benign_problems(ok, sent, 0.995, 100) == expected


MIB = 1024


@pytest.mark.parametrize(
    ("start", "peak", "after", "expected"),
    [
        (30 * MIB, 90 * MIB, 45 * MIB, []),
        (30 * MIB, 150 * MIB, 50 * MIB, []),
        (30 * MIB, 151 * MIB, 40 * MIB, ["RSS peaked at 151.0 MiB (limit 150)"]),
        (
            30 * MIB,
            60 * MIB,
            51 * MIB,
            ["RSS after the attack 51.0 MiB, more than 20 MiB over the 30.0 MiB it started at"],
        ),
    ],
)
def test_rss_problems(start: int, peak: int, after: int, expected: list[str]) -> None:
    assert rss_problems(start, peak, after, ceiling_kb=150 * MIB, slack_kb=20 * MIB) == expected


WINDOW = CutWindow(timeout_s=2.0, early_s=0.5, late_s=2.0, min_share=0.95)


@pytest.mark.parametrize(
    ("connections", "expected"),
    [
        # Opened at 0 and cut after about 2 s, reopened and cut again; the last ones, opened
        # too late to be judged, are still held when the 7 s attack ends.
        ([(0.0, 2.1, "eof"), (2.1, 2.4, "408"), (4.5, 3.9, "closed"), (5.0, None, "")], []),
        ([(0.0, 1.4, "eof")], ["0 of 1 connections (0%) were cut within 1.5-4 s (needed 95%); "
                                "not cut at all: 0, median time to cut 1.40 s"]),
        ([(0.0, None, ""), (1.0, 2.0, "eof")], ["1 of 2 connections (50%) were cut within "
                                                "1.5-4 s (needed 95%); not cut at all: 1, "
                                                "median time to cut 2.00 s"]),
        ([(3.5, None, "")], ["no connection was open long enough to judge (attack of 7 s)"]),
    ],
)  # fmt: skip
def test_cut_problems(
    connections: list[tuple[float, float | None, str]], expected: list[str]
) -> None:
    assert cut_problems(connections, 7.0, WINDOW) == expected


def test_attack_plan_round_trips_through_its_command_line() -> None:
    plan = AttackPlan("slow_body", 10, 3.5, 2.0, body_length=42)
    argv = plan.argv("127.0.0.1:8080", Path("/dev/null"))
    assert argv[2:5] == ["attack", "--target", "127.0.0.1:8080"]
    assert argv[argv.index("--kind") + 1] == "slow_body"
    assert argv[argv.index("--body-length") + 1] == "42"
    assert argv[-2:] == ["--out", "/dev/null"]


@pytest.mark.parametrize(
    ("kind", "flags"),
    [
        ("slow_head", ["-H", "-c", "1000", "-l", "400", "-i", "10"]),
        ("slow_body", ["-B", "-s", "1000000"]),
        ("slow_read", ["-X", "-z", "5", "-n", "10", "-k", "1"]),
    ],
)
def test_slowhttptest_argv(kind: str, flags: list[str]) -> None:
    plan = AttackPlan(kind, 1000, 40.0, 10.0, large_bytes=2097152)
    argv = slowhttptest_argv("slowhttptest", plan, "http://127.0.0.1:80/", Path("/tmp/x"))
    assert argv[1] == flags[0]
    for flag, value in zip(flags[1::2], flags[2::2], strict=True):
        assert argv[argv.index(flag) + 1] == value
    url = argv[argv.index("-u") + 1]
    large = "http://127.0.0.1:80/large?bytes=2097152"
    assert url == (large if kind == "slow_read" else "http://127.0.0.1:80/")


@pytest.mark.parametrize(
    ("content", "expected"),
    [("4096\t16384\t4194304\n", 4194304), ("4096 16384 8388608", 8388608), (None, 4194304)],
)
def test_largest_send_buffer(content: str | None, expected: int, tmp_path: Path) -> None:
    tcp_wmem = tmp_path / "tcp_wmem"
    if content is not None:
        tcp_wmem.write_text(content)
    assert largest_send_buffer(tcp_wmem) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {"seconds": 0, "closed": 0, "peak_connected": 0, "available_share": None}),
        (
            "Seconds,Closed,Pending,Connected,Service Available\n"
            "0,0,1,0,50\n1,0,0,50,50\n2,10,0,40,0\n3,25,0,25,50\n",
            {"seconds": 3, "closed": 25, "peak_connected": 50, "available_share": 0.75},
        ),
    ],
)
def test_parse_slowhttptest_csv(text: str, expected: dict[str, object]) -> None:
    assert parse_slowhttptest_csv(text) == expected


SLOWHTTPTEST_OUTPUT = """\
\x1b[0mslow HTTP test status on 5th second:
\x1b[1;32minitializing:\x1b[1;32m        0
\x1b[1;32mconnected:   \x1b[1;32m        50
\x1b[1;32merror:       \x1b[1;32m        0
\x1b[1;32mclosed:      \x1b[1;32m        0
\x1b[0mslow HTTP test status on 13th second:
\x1b[1;32mconnected:   \x1b[1;32m        0
\x1b[1;32merror:       \x1b[1;32m        49
\x1b[1;32mclosed:      \x1b[1;32m        1
Test ended on 13th second
Exit status:\x1b[1;36m Cancelled by user
"""


ALL_GONE = "closed:      0\nTest ended on 10th second\nExit status: No open connections left\n"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("", {}),
        (
            SLOWHTTPTEST_OUTPUT,
            {"closed": 1, "errors": 49, "exit_status": "Cancelled by user", "ended_s": 13},
        ),
        (ALL_GONE, {"closed": 0, "exit_status": "No open connections left", "ended_s": 10}),
    ],
)
def test_parse_slowhttptest_status(output: str, expected: dict[str, object]) -> None:
    assert parse_slowhttptest_status(output) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, 0),
        ({"closed": 1, "errors": 49, "exit_status": "Cancelled by user"}, 50),
        ({"closed": 0, "exit_status": "No open connections left"}, 1000),
        ({"closed": 7, "exit_status": "Hit test time limit"}, 7),
    ],
)
def test_slowhttptest_cut(status: dict[str, object], expected: int) -> None:
    assert slowhttptest_cut(status, 1000) == expected


def test_vm_rss_of_a_gone_process_counts_zero() -> None:
    assert vm_rss_kb([2**22 + 1]) == 0
