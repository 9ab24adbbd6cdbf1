"""The demo shop's apps, on the standard library only: each is a mesh service of its own.

::

    python -m meshpy.demo.shop cart                      # /checkout: recommendation + payment
    python -m meshpy.demo.shop recommendation            # /recommendations
    python -m meshpy.demo.shop payment [--fail-rate F]   # /charge; F of the answers are 500,
                                                         # evenly spread (0.1: every tenth)
    python -m meshpy.demo.shop loadgen [--rate N]        # N checkouts per second to cart

Each listens on 127.0.0.1:$PORT and answers /healthz. They call each other by service
name (``http://payment/charge``) through ``HTTP_PROXY``: their sidecar, which takes the
request to a healthy instance over mutual TLS. Each call carries the trace headers of the
request that caused it (``meshpy.tracing.propagation_headers``), so that a checkout is one
trace across loadgen, cart, recommendation and payment. ``MESHPY_VERSION`` (v1, v2) is in
payment's answers, so a checkout tells which payment version served it. SIGTERM stops
an app cleanly (exit code 0).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from meshpy.tracing import propagation_headers

__all__ = ["main"]

Answer = tuple[int, dict[str, Any]]
Handler = Callable[[str, dict[str, str]], Answer]
"""Answers a request from its query and its trace headers (to pass on to its calls)."""

CALL_TIMEOUT_S = 5.0
SERVICE = os.environ.get("MESHPY_SERVICE", "shop")
VERSION = os.environ.get("MESHPY_VERSION", "")

_opener = urllib.request.build_opener()  # honours HTTP_PROXY / NO_PROXY: the sidecar


def call(
    url: str, body: dict[str, Any] | None = None, trace: dict[str, str] | None = None
) -> dict[str, Any]:
    """GET (or POST ``body`` as JSON to) another service by name, with the trace headers of
    the request that causes the call; raises OSError on failure."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method="POST" if data else "GET", headers=trace or {}
    )
    if data:
        request.add_header("Content-Type", "application/json")
    with _opener.open(request, timeout=CALL_TIMEOUT_S) as response:
        answer: dict[str, Any] = json.loads(response.read() or b"{}")
        return answer


def serve(routes: dict[str, Handler], stopped: threading.Event | None = None) -> None:
    """Answer ``routes`` (path -> handler) and /healthz on $PORT until SIGTERM/SIGINT."""

    class Handle(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self._answer()

        def _answer(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/healthz":
                status, body = 200, {"status": "ok"}
            elif path in routes:
                # Its calls join this request's trace: the sidecars can't link them.
                status, body = routes[path](query, propagation_headers(self.headers))
            else:
                status, body = 404, {"error": f"no {path} here"}
            data = json.dumps({"service": SERVICE, **body}).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the sidecar's metrics count the requests."""

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handle)
    server.daemon_threads = True

    def stop(_signum: int, _frame: FrameType | None) -> None:
        if stopped is not None:
            stopped.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{SERVICE} {VERSION}: listening on {server.server_address}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()


# --- the services --------------------------------------------------------------------------

_orders = itertools.count(1)


def checkout(_query: str, trace: dict[str, str]) -> Answer:
    """cart: recommendations for the basket, then the payment."""
    order = next(_orders)
    try:
        recommended = call(f"http://recommendation/recommendations?order={order}", trace=trace)
    except (OSError, ValueError) as exc:
        return 502, {"error": f"recommendation: {_reason(exc)}"}
    try:
        payment = call("http://payment/charge", {"order": order, "amount": 4200}, trace)
    except (OSError, ValueError) as exc:
        return 502, {"error": f"payment: {_reason(exc)}"}
    return 200, {
        "order": order,
        "recommended": recommended.get("items", []),
        "payment": payment.get("version", ""),
    }


def recommendations(_query: str, _trace: dict[str, str]) -> Answer:
    """recommendation: three products."""
    time.sleep(random.uniform(0.0005, 0.003))
    return 200, {"items": random.sample(["tea", "mug", "kettle", "honey", "lemon", "spoon"], 3)}


def charger(fail_rate: float) -> Handler:
    """payment: charges, except for ``fail_rate`` of the requests (a faulty release).

    The failures are spread evenly, not drawn at random: with 0.1, exactly one charge in
    every ten consecutive ones fails, so a few seconds of traffic always show the fault.
    """
    charges = itertools.count(1)
    lock = threading.Lock()

    def failing() -> bool:
        with lock:
            n = next(charges)
        return int(n * fail_rate) > int((n - 1) * fail_rate)

    def charge(_query: str, _trace: dict[str, str]) -> Answer:
        time.sleep(random.uniform(0.001, 0.004))
        if fail_rate and failing():
            return 500, {"error": "charge failed", "version": VERSION}
        return 200, {"status": "charged", "version": VERSION}

    return charge


def _reason(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc)


# --- the load generator ----------------------------------------------------------------------


def generate_load(rate: float, stopped: threading.Event, report_every: float = 10.0) -> None:
    """Send ``rate`` checkouts per second to cart (once it answers) until ``stopped``."""
    while not stopped.is_set():  # until cart is reachable through the sidecar
        try:
            call("http://cart/healthz")
            break
        except (OSError, ValueError):
            stopped.wait(0.2)
    counts = {"sent": 0, "ok": 0, "failed": 0}
    lock = threading.Lock()
    in_flight = threading.BoundedSemaphore(64)

    def one() -> None:
        try:
            call("http://cart/checkout", {})
            result = "ok"
        except (OSError, ValueError):
            result = "failed"
        finally:
            in_flight.release()
        with lock:
            counts[result] += 1

    interval = 1.0 / rate
    next_at = time.monotonic()
    last_report = next_at
    with ThreadPoolExecutor(max_workers=64) as pool:
        while not stopped.wait(max(0.0, next_at - time.monotonic())):
            next_at += interval
            if time.monotonic() - next_at > 1.0:  # far behind (a pause): do not burst
                next_at = time.monotonic()
            if not in_flight.acquire(blocking=False):
                continue  # too many stuck requests: skip this one
            counts["sent"] += 1
            pool.submit(one)
            if time.monotonic() - last_report >= report_every:
                last_report = time.monotonic()
                with lock:
                    print(f"loadgen: {json.dumps(counts)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one of the shop's apps."""
    parser = argparse.ArgumentParser(prog="python -m meshpy.demo.shop", description=__doc__)
    parser.add_argument("app", choices=["cart", "recommendation", "payment", "loadgen"])
    parser.add_argument(
        "--fail-rate", type=float, default=0.0, help="payment: share of 500s, evenly spread"
    )
    parser.add_argument("--rate", type=float, default=25.0, help="loadgen: checkouts per second")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0 or args.rate <= 0:
        parser.error("--fail-rate is 0..1 and --rate above 0")
    if args.app == "cart":
        serve({"/checkout": checkout})
    elif args.app == "recommendation":
        serve({"/recommendations": recommendations})
    elif args.app == "payment":
        serve({"/charge": charger(args.fail_rate)})
    else:
        stopped = threading.Event()
        threading.Thread(
            target=generate_load, args=(args.rate, stopped), name="load", daemon=True
        ).start()
        serve({}, stopped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
