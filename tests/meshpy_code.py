"""meshpy's own code, for tests that look at all of it: the package's modules, the scripts."""

from __future__ import annotations

import functools
import importlib.util
import pkgutil
from pathlib import Path
from types import ModuleType

import meshpy

ROOT = Path(__file__).resolve().parents[1]

RUN_ON_IMPORT = {"__main__", "env"}
"""Modules that run something when imported, rather than define it."""


def meshpy_modules() -> list[str]:
    """The name of every module of the package that may be imported."""
    found = pkgutil.walk_packages(meshpy.__path__, "meshpy.")
    return [m.name for m in found if m.name.rsplit(".", 1)[-1] not in RUN_ON_IMPORT]


@functools.cache
def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the scripts are not a package), loaded once."""
    spec = importlib.util.spec_from_file_location(
        f"scripts_{name}", ROOT / "scripts" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
