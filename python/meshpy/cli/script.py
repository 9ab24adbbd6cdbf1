"""``meshpy script run FILE.py``: run a routing script, a Python file using ``meshpy.rules``.

The script runs as ``python FILE.py ARGS`` would (``__name__ == "__main__"``, its
directory on ``sys.path``). Every ``meshpy.rules.Client`` it makes uses ``--server`` and
``--token`` unless it names its own; with ``--dry-run`` those clients apply nothing and
the resources they would apply are printed as YAML documents.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, fail, narrate

__all__ = ["app", "run"]

app = typer.Typer(
    help="Routing scripts: Python files that build and apply resources with meshpy.rules.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    file: Path = typer.Argument(..., metavar="FILE.py", help="The script."),
    args: list[str] | None = typer.Argument(
        None, metavar="[ARGS]...", help="The script's sys.argv[1:] (after -- if they start with -)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Apply nothing: print what the script would apply, as YAML."
    ),
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Run a routing script; the resources it applies are applied (or, dry, printed)."""
    import runpy

    import yaml

    from meshpy.rules import ApiError, ResourceError, session

    if not file.is_file():
        fail(f"{file}: no such file")
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(file), *(args or [])]
    sys.path.insert(0, str(file.resolve().parent))
    with session(server, token, dry_run=dry_run) as done:
        try:
            runpy.run_path(str(file), run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise typer.Exit(exc.code if isinstance(exc.code, int) else 1) from None
        except ResourceError as exc:
            fail(f"{file}: invalid resource: {exc}")
        except ApiError as exc:
            fail(f"{file}: {exc}")
        finally:
            sys.argv = saved_argv
            sys.path[:] = saved_path
    if not dry_run:
        for item in done.applied:
            typer.echo(f"{item.kind.lower()}/{item.name} {item.result}")
        return
    documents: list[Any] = []
    for record in done.recorded:
        if record.action == "apply":
            documents.append(record.document)
        else:
            narrate(f"would delete {record.kind.lower()} {record.namespace}/{record.name}")
    if documents:
        text = yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True)
        typer.echo(text, nl=False)
    narrate(f"dry run: {len(documents)} resource(s) would be applied; nothing was sent")
