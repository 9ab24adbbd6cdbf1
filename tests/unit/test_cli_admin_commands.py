"""The control-plane commands are registered, documented, and keep --help light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from meshpy.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["server", "--help"], ["--listen", "--db", "--data-dir", "meshpy db upgrade"]),
        (["db", "upgrade", "--help"], ["--db", "--data-dir"]),
        (["token", "create", "--help"], ["--service", "--namespace", "--ttl", "MESHPY_TOKEN"]),
        (["service", "list", "--help"], ["--namespace", "--output", "--server"]),
        (["apply", "--help"], ["--filename", "FILE|DIR|-", "--namespace"]),
        (["get", "--help"], ["KIND", "--all-namespaces", "--output"]),
        (["describe", "--help"], ["KIND", "NAME"]),
        (["delete", "--help"], ["KIND", "NAME"]),
    ],
)
def test_help(argv: list[str], expected: list[str]) -> None:
    result = runner.invoke(app, argv, terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output


@pytest.mark.parametrize(
    "argv", [["server", "--help"], ["get", "--help"], ["apply", "--help"], ["token", "--help"]]
)
def test_admin_help_imports_nothing_heavy(argv: list[str]) -> None:
    check = (
        "import contextlib, io, sys\n"
        "from meshpy.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "    try:\n"
        f"        app({argv!r}, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'pydantic', 'httpx', 'fastapi', 'sqlalchemy', 'uvicorn'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, timeout=30)


def test_output_must_be_a_known_format() -> None:
    result = runner.invoke(app, ["service", "list", "-o", "xml"])
    assert result.exit_code == 2
