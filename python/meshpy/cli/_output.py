"""Output of data on stdout: ``-o table`` (aligned columns, or rich renderables), ``-o json``
or ``-o yaml``."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["OUTPUT_OPTION", "Format", "emit", "render", "table"]


class Format(StrEnum):
    """What ``-o`` accepts."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


OUTPUT_OPTION: Any = typer.Option(
    Format.TABLE, "--output", "-o", help="Print a table, or the API's answer as JSON or YAML."
)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns separated by three spaces, no trailing spaces; "-" for None or empty."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *cells]:
        line = "   ".join(value.ljust(widths[i]) for i, value in enumerate(row))
        lines.append(line.rstrip())
    return "\n".join(lines) + "\n"


def render(*renderables: RenderableType) -> str:
    """Rich renderables as text: coloured on a terminal, as wide as it is (else 160 columns);
    plain text, without trailing spaces, when stdout is not a terminal. Strings are shown
    as they are, never read as markup: they hold names and patterns such as ``[0-9]+``."""
    from rich.console import Console

    terminal = sys.stdout.isatty()
    out = io.StringIO()
    width = shutil.get_terminal_size((160, 24)).columns
    console = Console(file=out, width=width, force_terminal=terminal, highlight=False, markup=False)
    for renderable in renderables:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()) + "\n"


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def emit(data: Any, fmt: Format, as_table: Callable[[Any], str]) -> None:
    """Print ``data`` in the chosen format on stdout."""
    if fmt is Format.JSON:
        typer.echo(json.dumps(data, indent=2))
    elif fmt is Format.YAML:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(as_table(data), nl=False)
