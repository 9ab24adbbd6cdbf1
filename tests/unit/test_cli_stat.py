"""``meshpy stat`` and ``meshpy edges`` refuse malformed questions before asking the server
(exit 2 with the reason), and their tables render the API's answer."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from meshpy.cli import app
from meshpy.cli.stat import edges_table, stats_table

runner = CliRunner()
NOWHERE = "http://127.0.0.1:9"  # never asked: each question is refused first


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stat", "-t", "soon"], "invalid duration 'soon'"),
        (["stat", "--to", "cart"], "error: --to needs a SERVICE whose requests to count"),
        (["stat", "--version", "v1"], "error: --version needs a SERVICE"),
        (["stat", "Cart!"], "error: SERVICE: 'Cart!' is not a name"),
        (["stat", "cart", "--from", "a_b"], "error: --from: 'a_b' is not a name"),
        (["edges", "-n", "Shop"], "error: --namespace: 'Shop' is not a name"),
    ],
)
def test_malformed_questions_exit_2(argv: list[str], message: str) -> None:
    result = runner.invoke(app, [*argv, "--server", NOWHERE, "--token", "t"], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in result.output


def _row(service: str, version: str, requests: int, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "destination": {"namespace": "default", "service": service, "version": version},
        "source": None,
        "identity": None,
        "mtls": None,
        "requests": requests,
        "success_rate": 0.75 if requests else None,
        "rps": requests / 60,
        "latency_s": {"p50": 0.0123 if requests else None, "p95": None, "p99": None},
        "meshed": {"ready": 1, "total": 2},
        "tcp": {"open_connections": 3 if requests else 0},
    }
    return row | extra


def test_tables() -> None:
    answer = {"window_s": 60.0, "rows": [_row("payment", "v2", 30), _row("loadgen", "v1", 0)]}
    assert stats_table(answer).splitlines() == [
        "NAMESPACE   NAME      VERSION   MESHED   SUCCESS   RPS   LATENCY_P50   LATENCY_P95   "
        "LATENCY_P99   TCP_CONN",
        "default     payment   v2        1/2      75.00%    0.5   12.3ms        -             -"
        "             3",
        "default     loadgen   v1        1/2      -         0.0   -             -             -"
        "             0",
    ]
    assert stats_table({"window_s": 60.0, "rows": []}) == "no traffic in the last 60s\n"
    source = {"namespace": "default", "service": "cart", "version": "unknown"}
    edge = _row("payment", "v2", 30, source=source, identity="spiffe://d/ns/default/sa/cart")
    plain = _row("payment", "v1", 2, source=source | {"service": "unknown"}, mtls=False)
    lines = edges_table({"window_s": 3600.0, "rows": [edge | {"mtls": True}, plain]}).splitlines()
    assert lines[1].split() == [
        "cart",
        "payment",
        "v2",
        "default",
        "default",
        "yes",
        "spiffe://d/ns/default/sa/cart",
        "30",
    ]
    assert lines[2].split() == [
        "unknown",
        "payment",
        "v1",
        "default",
        "default",
        "no",
        "(plaintext)",
        "-",
        "2",
    ]
