"""The command line is wired up, answers --help, and keeps the proxy path light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshpy import __version__
from meshpy.cli import app

runner = CliRunner()


def test_help_lists_the_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "proxy" in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"meshpy {__version__}\n"


def test_proxy_run_help_documents_its_options() -> None:
    result = runner.invoke(app, ["proxy", "run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--config", "--drain-timeout", "--addresses-json", "SIGHUP"):
        assert option in result.output


def test_proxy_run_needs_a_config() -> None:
    result = runner.invoke(app, ["proxy", "run"])
    assert result.exit_code == 2


@pytest.mark.parametrize(("value", "message"), [("soon", "invalid duration 'soon'"), ("-1", "-1")])
def test_proxy_run_rejects_a_bad_drain_timeout(value: str, message: str) -> None:
    result = runner.invoke(app, ["proxy", "run", "-c", "x.yaml", "--drain-timeout", value])
    assert result.exit_code == 2
    assert message in result.output


def test_events_go_with_a_sidecar_and_a_writable_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["proxy", "run", "-c", "x.yaml", "--events", "e.jsonl"])
    assert result.exit_code == 2
    assert "only a sidecar reports events" in result.output
    missing = tmp_path / "no-such-dir" / "e.jsonl"
    argv = ["run", "--service", "web", "--token", "t", "--events", str(missing), "--", "true"]
    result = runner.invoke(app, argv, terminal_width=200)
    assert result.exit_code == 2
    assert "cannot append to" in result.output
    assert "No such file or directory" in result.output
    assert not missing.parent.exists()


@pytest.mark.parametrize(("value", "seconds"), [("10", 10.0), ("2.5", 2.5), ("500ms", 0.5)])
def test_drain_timeout_takes_seconds_or_a_duration(value: str, seconds: float) -> None:
    from meshpy.cli.run import parse_seconds_option

    assert parse_seconds_option(value, "--drain-timeout") == seconds


@pytest.mark.parametrize(
    "argv",
    [
        None,
        ["--help"],
        ["proxy", "run", "--help"],
        ["proxy", "run", "--config", "absent.yaml"],
        ["rollout", "--help"],
    ],
)
def test_cli_and_proxy_path_import_nothing_heavy(argv: list[str] | None) -> None:
    invoke = "" if argv is None else f"app({argv!r}, standalone_mode=False)"
    check = (
        "import contextlib, io, sys\n"
        "from meshpy.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        f"    {invoke or 'pass'}\n"
        "heavy = sorted({'pydantic', 'httpx', 'fastapi', 'sqlalchemy'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, timeout=30)


def test_the_sidecar_process_imports_only_the_standard_library_and_the_core() -> None:
    check = (
        "import sys\n"
        "import meshpy.sidecar.__main__, meshpy.sidecar.runner\n"
        "third = {m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)\n"
        # setuptools' .pth hook may be there in any Python process.
        "assert third <= {'meshpy', '__main__', '_distutils_hack'}, sorted(third)\n"
        "ours = {m for m in sys.modules if m.startswith('meshpy.')}\n"
        "allowed = ('meshpy._core', 'meshpy.addresses', 'meshpy.sidecar')\n"
        "assert all(m.startswith(allowed) for m in ours), sorted(ours)\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, timeout=30)
