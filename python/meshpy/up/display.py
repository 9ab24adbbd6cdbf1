"""How ``meshpy up`` shows the mesh: a live table on a terminal, plain lines otherwise.

Both show one row per instance: service, version, instance (short id), state (from the
registry), and the traffic into it over the last seconds: requests per second, its share
of its service's traffic, the share of answers that were not 5xx, and the p99 duration.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from meshpy.up.stats import Rates

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

__all__ = ["LiveView", "Output", "PlainView", "Row", "View", "fmt_ms", "fmt_pct", "fmt_rps"]

PLAIN_EVERY_S = 5.0
"""Without a terminal, the rows are printed this often."""


@dataclass(frozen=True)
class Row:
    """One instance as shown."""

    service: str
    version: str | None
    name: str
    """The replica's name in the mesh file's terms: cart-1, payment-v2-1."""
    instance: str | None
    state: str
    rates: Rates
    share: float | None
    """Of its service's requests per second, this instance's part."""
    restarts: int = 0


def fmt_rps(value: float) -> str:
    """Requests per second, one decimal."""
    return f"{value:.1f}"


def fmt_pct(value: float | None) -> str:
    """A fraction as a percentage, or "-"."""
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds, or "-"."""
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.1f}ms" if ms < 100 else f"{ms:.0f}ms"


def _cells(row: Row) -> list[str]:
    return [
        row.service,
        row.version or "-",
        (row.instance or "-")[:8],
        row.state,
        fmt_rps(row.rates.rps),
        fmt_pct(row.share),
        fmt_pct(row.rates.success),
        fmt_ms(row.rates.p99),
        str(row.restarts),
    ]


HEADERS = ("SERVICE", "VERSION", "INSTANCE", "STATE", "RPS", "SHARE", "SUCCESS", "P99", "RESTARTS")


class View(Protocol):
    """Where rows and one-off lines go."""

    def line(self, text: str) -> None:
        """A line that stays (an event)."""

    def show(self, title: str, rows: Sequence[Row], footer: str) -> None:
        """The current state (called about once a second)."""

    def close(self) -> None:
        """Stop showing the table."""


class PlainView:
    """Plain lines on a stream: events as they happen, the rows every few seconds."""

    def __init__(self, out: TextIO = sys.stdout, every: float = PLAIN_EVERY_S) -> None:
        self.out = out
        self.every = every
        self._last = 0.0

    def line(self, text: str) -> None:
        """Print ``text``."""
        self.out.write(text + "\n")
        self.out.flush()

    def show(self, title: str, rows: Sequence[Row], footer: str) -> None:
        """Print the rows as aligned columns, at most every ``every`` seconds."""
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        table = [list(HEADERS), *(_cells(r) for r in rows)]
        widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
        lines = [title]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in table
        ]
        if footer:
            lines.append("  " + footer)
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def close(self) -> None:
        """Nothing to stop."""


class LiveView:
    """A rich table redrawn in place on a terminal, with events printed above it."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console()
        self._live: Live | None = None
        self._live_cls = Live

    def line(self, text: str) -> None:
        """Print ``text`` above the table."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def show(self, title: str, rows: Sequence[Row], footer: str) -> None:
        """Redraw the table."""
        table = self._table(title, rows, footer)
        if self._live is None:
            self._live = self._live_cls(
                table, console=self.console, auto_refresh=False, transient=False
            )
            self._live.start()
        self._live.update(table, refresh=True)

    def close(self) -> None:
        """Leave the last table on screen."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    @staticmethod
    def _table(title: str, rows: Sequence[Row], footer: str) -> Table:
        from rich.table import Table

        table = Table(title=title, caption=footer or None, title_justify="left")
        for header in HEADERS:
            right = header in ("RPS", "SHARE", "SUCCESS", "P99", "RESTARTS")
            table.add_column(header, justify="right" if right else "left", no_wrap=True)
        previous = None
        for row in rows:
            cells = _cells(row)
            if row.service == previous:
                cells[0] = ""
            previous = row.service
            style = {"healthy": "green", "starting": "yellow"}.get(row.state, "red")
            cells[3] = f"[{style}]{cells[3]}[/]"
            success = row.rates.success
            if success is not None and success < 0.99:
                cells[6] = f"[red]{cells[6]}[/]"
            table.add_row(*cells)
        return table


class Output:
    """A view shared by threads (rollouts print from theirs), one call at a time.

    A closed terminal must not stop the stopping: what cannot be shown is dropped.
    """

    def __init__(self, view: View) -> None:
        self.view = view
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """A line that stays."""
        with self._lock, contextlib.suppress(OSError):
            self.view.line(text)

    def say(self, text: str) -> None:
        """A line that stays, as ``meshpy up: text``."""
        self.line(f"meshpy up: {text}")

    def error(self, text: str) -> None:
        """Stop the table, then ``meshpy up: text`` on stderr."""
        with contextlib.suppress(OSError):
            self.view.close()
            sys.stderr.write(f"meshpy up: {text}\n")
            sys.stderr.flush()

    def show(self, title: str, rows: Sequence[Row], footer: str) -> None:
        """The current state."""
        with self._lock, contextlib.suppress(OSError):
            self.view.show(title, rows, footer)

    def close(self) -> None:
        """Stop showing the table."""
        with contextlib.suppress(OSError):
            self.view.close()
