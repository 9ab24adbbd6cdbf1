"""The Rust structure check finds import cycles and layer breaches, and the crates have none."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.meshpy_code import load_script

ROOT = Path(__file__).resolve().parents[2]
CRATES = ["crates/proxy-config", "crates/proxy-core", "crates/proxy-py"]


def checker() -> ModuleType:
    return load_script("rust_layers")


def crate(tmp_path: Path, files: dict[str, str], manifest: str = '[package]\nname = "x"\n') -> Path:
    (tmp_path / "Cargo.toml").write_text(manifest)
    for name, text in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_crates_have_no_import_cycle_and_keep_their_layers() -> None:
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


def test_a_cycle_inside_a_folder_is_found(tmp_path: Path) -> None:
    check = checker()
    root = crate(
        tmp_path,
        {
            "server.rs": "pub mod http;\npub mod listener;\n",
            "server/http.rs": "use crate::server::listener::Route;\n",
            "server/listener.rs": "use super::http;\n",
        },
    )
    assert check.cycles(check.module_graph(root)) == []
    assert check.cycles(check.module_graph(root, 2)) == [["server::http", "server::listener"]]
    assert check.main([str(root)]) == 1


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        ("use crate::a::B;", [["a", "B"]]),
        ("use crate::{a::{b::C, d}, e};", [["a", "b", "C"], ["a", "d"], ["e"]]),
        ("use crate::a::{self, B};", [["a", "self"], ["a", "B"]]),
        ("let x = crate::rng::next_u64();", [["rng", "next_u64"]]),
    ],
)
def test_use_trees_are_expanded(text: str, paths: list[list[str]]) -> None:
    assert checker().crate_paths(text) == paths


LAYERED = """[package]
name = "x"

[package.metadata.layers]
order = [["server"], ["policy"], ["error"]]
"""


def test_a_layer_may_use_only_the_layers_below_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check = checker()
    files = {
        "server.rs": "use crate::policy::route::Table;\nuse crate::error::E;\n",
        "policy.rs": "pub mod route;\n",
        "policy/route.rs": "use crate::error::E;\n",
        "error.rs": "pub struct E;\n",
    }
    assert check.main([str(crate(tmp_path, files, LAYERED))]) == 0
    files["policy/route.rs"] += "use crate::server::io;\n"
    assert check.main([str(crate(tmp_path, files, LAYERED))]) == 1
    assert "policy uses server, a layer above it: io" in capsys.readouterr().err


def test_every_module_must_be_in_a_layer(tmp_path: Path) -> None:
    check = checker()
    root = crate(tmp_path, {"server.rs": "", "stray.rs": ""}, LAYERED)
    assert check.layer_violations(check.module_graph(root), check.layers(root)) == [
        "stray is in no layer"
    ]
