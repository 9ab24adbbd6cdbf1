"""Slow-client attacks (slow head, body, read), a benign client, RSS sampling and a backend."""

# Standard library only: benches/slow_clients.py runs it with any Python 3.11.

from __future__ import annotations

from tests.security.slowclients.attack import (
    AttackPlan,
    reply_status,
    run_attack_process,
    server_side_states,
)
from tests.security.slowclients.backend import (
    backend_argv,
    spawn_listening,
    start_backend,
    stop_process,
    wait_http_hello,
)
from tests.security.slowclients.common import (
    ATTACKS,
    LARGE_BYTES,
    largest_send_buffer,
    percentile,
    raise_open_files_limit,
)
from tests.security.slowclients.measurement import Measurement, measure
from tests.security.slowclients.memory import vm_rss_kb
from tests.security.slowclients.slowhttptest import (
    parse_slowhttptest_csv,
    parse_slowhttptest_status,
    run_slowhttptest,
    slowhttptest_argv,
    slowhttptest_cut,
)
from tests.security.slowclients.verdicts import (
    CutWindow,
    benign_problems,
    cut_problems,
    rss_problems,
    success_ratio,
)

__all__ = [
    "ATTACKS",
    "LARGE_BYTES",
    "AttackPlan",
    "CutWindow",
    "Measurement",
    "backend_argv",
    "benign_problems",
    "cut_problems",
    "largest_send_buffer",
    "measure",
    "parse_slowhttptest_csv",
    "parse_slowhttptest_status",
    "percentile",
    "raise_open_files_limit",
    "reply_status",
    "rss_problems",
    "run_attack_process",
    "run_slowhttptest",
    "server_side_states",
    "slowhttptest_argv",
    "slowhttptest_cut",
    "spawn_listening",
    "start_backend",
    "stop_process",
    "success_ratio",
    "vm_rss_kb",
    "wait_http_hello",
]
