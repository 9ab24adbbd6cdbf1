"""``meshpy up [mesh.yaml]`` and ``meshpy demo``: a whole mesh on this machine, watched live."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from meshpy.up.display import View
    from meshpy.up.meshfile import MeshFile

__all__ = ["demo", "up"]

EXIT_USAGE = 2

LISTEN_OPTION: Any = typer.Option(
    "127.0.0.1:15010",
    "--listen",
    metavar="HOST:PORT",
    help="Where the embedded control plane listens; port 0 picks a free one.",
)
READY_TIMEOUT_OPTION: Any = typer.Option(
    60.0,
    "--ready-timeout",
    min=1.0,
    metavar="SECONDS",
    help="How long each group of services has to become healthy before up gives up.",
)


def up(
    mesh_file: Path = typer.Argument(
        Path("mesh.yaml"), metavar="[MESH_FILE]", help="The mesh file."
    ),
    listen: str = LISTEN_OPTION,
    duration: float | None = typer.Option(
        None, "--duration", min=0.0, metavar="SECONDS", help="Stop by itself after this long."
    ),
    ready_timeout: float = READY_TIMEOUT_OPTION,
) -> None:
    """Run every service of a mesh file, each instance with its sidecar, and show them live.

    Starts a control plane (`meshpy server`, data and logs in MESHPY_HOME or ./.meshpy),
    a join token per service, applies the file's resources, then runs each replica with
    `meshpy run`. On a terminal a table shows every instance's state and the traffic into
    it (requests per second, share of its service, success rate, p99); otherwise plain
    lines every few seconds. Ctrl-C or SIGTERM stops the sidecars (they drain and stop
    their apps), then the control plane. Exit code 0 after a clean stop, 1 when something
    failed, 2 for a bad mesh file.
    """
    mesh, resources = _load(mesh_file)
    code = _run(mesh, resources, mesh_file.resolve().parent, listen, duration, ready_timeout)
    raise typer.Exit(code)


def demo(
    duration: float | None = typer.Option(
        None,
        "--duration",
        min=0.0,
        metavar="SECONDS",
        help="Stop by itself after this long, with a summary [default: until Ctrl-C].",
    ),
    listen: str = LISTEN_OPTION,
    ready_timeout: float = READY_TIMEOUT_OPTION,
) -> None:
    """Run the demo shop: cart, recommendation, payment v1 and a v2 canary, and a load generator.

    Every call between them goes through the sidecars over mutual TLS; payment v2 gets 10%
    of payment's traffic (an HTTPRoute) and fails one charge in ten. 5 s after the mesh is
    ready, a rollout (the mesh file's `rollouts`, as `meshpy rollout` does it) moves payment
    to v2 in steps of 10, 50 and 100%, gated on v2's error rate (1% at most) and p99 as the
    sidecars measure them: the first step fails and every request goes back to v1. The
    summary shows the requests per service and version, the canary's share, success rates,
    the rollout's outcome and how the requests travelled. The files are in the meshpy.demo
    package (mesh.yaml, shop.py, routes/).
    """
    from meshpy import demo as demo_package

    mesh_file = Path(demo_package.__file__).parent / "mesh.yaml"
    mesh, resources = _load(mesh_file)
    raise typer.Exit(_run(mesh, resources, mesh_file.parent, listen, duration, ready_timeout))


def _load(mesh_file: Path) -> tuple[MeshFile, list[Path]]:
    """The mesh file and its resource files, checked; exit 2 naming the bad field."""
    from meshpy import resources
    from meshpy.up.meshfile import MeshFileError, load

    try:
        mesh, files = load(mesh_file)
    except MeshFileError as exc:
        for line in exc.lines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    for i, path in enumerate(files):
        try:
            parsed = resources.parse_stream(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            _usage(f"{mesh_file}: resources[{i}]: {path}: {exc}")
        except resources.ResourceError as exc:
            for where, message in exc.details:
                field = where or "(document)"
                typer.echo(
                    f"error: {mesh_file}: resources[{i}]: {path}: {field}: {message}", err=True
                )
            raise typer.Exit(EXIT_USAGE) from None
        if not parsed:
            _usage(f"{mesh_file}: resources[{i}]: {path}: no documents")
    return mesh, files


def _usage(line: str) -> None:
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _run(
    mesh: MeshFile,
    resources: list[Path],
    base_dir: Path,
    listen: str,
    duration: float | None,
    ready_timeout: float,
) -> int:
    from meshpy.up.runner import Options, Up

    home = Path(os.environ.get("MESHPY_HOME") or ".meshpy")
    options = Options(
        home=home,
        listen=listen,
        base_dir=base_dir,
        ready_timeout=ready_timeout,
        duration=duration,
    )
    return Up(mesh, resources, options, _view()).run()


def _view() -> View:
    from meshpy.up.display import LiveView, PlainView

    return LiveView() if sys.stdout.isatty() else PlainView()
