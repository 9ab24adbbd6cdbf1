"""No meshpy module warns when imported (pyproject's filterwarnings covers the tests at run time).

Third-party warnings are left to pyproject.toml's named entries: this test fails only on a
warning that Python attributes to one of meshpy's own modules, including a third party's
deprecation that meshpy's own code triggers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import meshpy
from tests.meshpy_code import meshpy_modules

# Imports each module named on the command line with every warning recorded, and prints
# them as JSON: the category, the message and the file Python attributes the warning to.
IMPORT_ALL = """
import importlib, json, sys, warnings
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    for name in sys.argv[1:]:
        importlib.import_module(name)
print(json.dumps([[w.category.__name__, str(w.message), w.filename] for w in seen]))
"""


def warnings_at_import(modules: list[str], path: Path | None = None) -> list[tuple[str, ...]]:
    """(category, message, file) of every warning raised while importing `modules`."""
    env = {"PYTHONPATH": str(path)} if path else None
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return [tuple(w) for w in json.loads(out.stdout)]


def test_every_module_is_imported() -> None:
    modules = meshpy_modules()
    assert "meshpy.api.app" in modules
    assert "meshpy.sidecar.main" in modules
    assert len(modules) > 80


def test_no_meshpy_module_warns_at_import() -> None:
    package_dir = str(Path(meshpy.__file__).parent)
    ours = [w for w in warnings_at_import(meshpy_modules()) if w[2].startswith(package_dir)]
    assert ours == []


def test_a_warning_at_import_is_seen_with_its_file(tmp_path: Path) -> None:
    """The check above is live: a module that warns is reported, and named as the source."""
    module = tmp_path / "warns_at_import.py"
    module.write_text("import warnings\nwarnings.warn('old', DeprecationWarning, stacklevel=1)\n")
    seen = warnings_at_import(["warns_at_import"], path=tmp_path)
    assert seen == [("DeprecationWarning", "old", str(module))]
