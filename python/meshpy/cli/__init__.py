"""The meshpy command line, ``meshpy <noun> <verb>``: one module per command group.

Command modules import heavy things (pydantic, httpx, the server stack) inside the
command functions, so ``meshpy --help`` stays instant and a sidecar stays small.
"""

from __future__ import annotations

import typer

from meshpy.cli import db, identity, proxy, resources, script, service, token, traces
from meshpy.cli.analyze import analyze
from meshpy.cli.check import check
from meshpy.cli.explain import explain
from meshpy.cli.rollout import rollout
from meshpy.cli.run import run
from meshpy.cli.server import server
from meshpy.cli.stat import edges, stat
from meshpy.cli.tap import tap, top
from meshpy.cli.up import demo, up

__all__ = ["app", "main"]

app = typer.Typer(
    name="meshpy",
    help="meshpy: a service mesh you can pip install.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: instant, and no colour codes
)
app.command("server")(server)
app.command("run")(run)
app.command("up")(up)
app.command("demo")(demo)
app.command("apply")(resources.apply)
app.command("get")(resources.get)
app.command("describe")(resources.describe)
app.command("delete")(resources.delete)
app.command("analyze")(analyze)
app.command("check")(check)
app.command("explain")(explain)
app.command("rollout")(rollout)
app.command("stat")(stat)
app.command("edges")(edges)
app.command("tap")(tap)
app.command("top")(top)
app.command("traces")(traces.list_traces)
app.command("trace")(traces.show_trace)
app.add_typer(service.app, name="service")
app.add_typer(token.app, name="token")
app.add_typer(db.app, name="db")
app.add_typer(proxy.app, name="proxy")
app.add_typer(identity.app, name="identity")
app.add_typer(script.app, name="script")


def _print_version(value: bool) -> None:
    if value:
        from meshpy import __version__

        typer.echo(f"meshpy {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """meshpy: a service mesh you can pip install."""


def main() -> None:
    """Entry point of the ``meshpy`` console script (and of ``python -m meshpy``)."""
    app(prog_name="meshpy")
