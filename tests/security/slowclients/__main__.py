"""Runs the command line: ``python tests/security/slowclients backend|attack ...``."""

from __future__ import annotations

import sys
from pathlib import Path


def run() -> int:
    """The command line's exit status, whether run by path (as ``PROGRAM``) or with -m."""
    if not __package__:
        # Run by path: this directory, not the repository root, heads sys.path; the package's
        # modules are imported from the root instead, by their full names.
        here = Path(__file__).resolve().parent
        sys.path[:] = [str(here.parents[2]), *(p for p in sys.path if p != str(here))]
    from tests.security.slowclients.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
