"""The import-cycle check of the Rust crates finds cycles, and the crates have none."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.meshpy_code import load_script

ROOT = Path(__file__).resolve().parents[2]
CRATES = ["crates/proxy-config", "crates/proxy-core", "crates/proxy-py"]


def checker() -> ModuleType:
    return load_script("rust_cycles")


def crate(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_crates_have_no_import_cycle() -> None:
    assert checker().main([str(ROOT / c) for c in CRATES]) == 0


@pytest.mark.parametrize(
    ("files", "members"),
    [
        (
            {"a.rs": "use crate::b::Lease;\n", "b.rs": "use crate::a::{Body, Sent};\n"},
            ["a", "b"],
        ),
        (
            {
                "listener.rs": "use crate::{http, tcp};\n",
                "http.rs": "use crate::listener::Route;\n",
                "tcp.rs": "fn f() { crate::inbound::handshake(); }\n",
                "inbound.rs": "use crate::{config, listener::{Shared, Shutdown}};\n",
            },
            ["http", "inbound", "listener", "tcp"],
        ),
        (
            {
                "config.rs": "mod authz;\n",
                "config/authz.rs": "use crate::authz::normalize;\n",
                "authz.rs": "use crate::config::Authorization;\n",
            },
            ["authz", "config"],
        ),
    ],
)
def test_a_cycle_is_found_with_the_names_that_tie_it(
    tmp_path: Path, files: dict[str, str], members: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    check = checker()
    root = crate(tmp_path, files)
    assert check.cycles(check.module_graph(root)) == [members]
    assert check.main([str(root)]) == 1
    assert ", ".join(members) in capsys.readouterr().err


def test_tests_and_comments_do_not_count(tmp_path: Path) -> None:
    check = checker()
    root = crate(
        tmp_path,
        {
            "a.rs": "use crate::b::X;\n\n#[cfg(test)]\nmod tests {\n    use crate::c::Y;\n}\n",
            "b.rs": "// see crate::a::Z\n",
            "b/tests.rs": "use crate::a::X;\n",
            "c.rs": "use crate::a::X;\n",
        },
    )
    assert check.cycles(check.module_graph(root)) == []
