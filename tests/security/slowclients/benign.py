"""The benign client: steady, well-behaved requests alongside an attack, and their record."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.security.slowclients.common import HELLO, Json, percentile
from tests.security.slowclients.verdicts import success_ratio

BENIGN_TIMEOUT_S = 5.0


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
