"""``meshpy script run`` and ``meshpy analyze`` are registered, documented and light to load."""

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
        (["script", "run", "--help"], ["FILE.py", "--dry-run", "--server", "--token"]),
        (["analyze", "--help"], ["--filename", "--offline", "--output", "MP001", "MP005"]),
    ],
)
def test_help(argv: list[str], expected: list[str]) -> None:
    result = runner.invoke(app, argv, terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output


@pytest.mark.parametrize("argv", [["script", "run", "--help"], ["analyze", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    check = (
        "import contextlib, io, sys\n"
        "from meshpy.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "    try:\n"
        f"        app({argv!r}, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = {'pydantic', 'httpx', 'yaml', 'meshpy.rules'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, timeout=30)


def test_analyze_offline_needs_files() -> None:
    result = runner.invoke(app, ["analyze", "--offline"])
    assert result.exit_code == 1
    assert "--offline needs -f" in result.stderr
