"""meshpy._core exports exactly the documented names, and its errors carry what they promise."""

from __future__ import annotations

import json

import pytest

from meshpy import _core

EXPORTS = {
    "__version__",
    "MeshpyError",
    "ConfigError",
    "BindError",
    "StateError",
    "IdentityError",
    "Proxy",
    "generate_csr",
    "certificate_info",
    "regex_problem",
    "check_bootstrap",
    "check_snapshot",
    "explain",
    "config_schema",
}


def test_exports_are_pinned() -> None:
    assert set(_core.__all__) == EXPORTS


def test_exception_tree() -> None:
    assert issubclass(_core.MeshpyError, Exception)
    for name in ("ConfigError", "BindError", "StateError", "IdentityError"):
        assert issubclass(getattr(_core, name), _core.MeshpyError)


def test_version_is_the_package_version() -> None:
    import meshpy

    assert meshpy.__version__ == _core.__version__
    assert _core.__version__.count(".") == 2


@pytest.mark.parametrize(
    ("bootstrap", "path"),
    [
        ({"workers": 0}, "workers"),
        ({"admin": "nowhere"}, "admin"),
        ({"admin": None, "colour": "red"}, ""),
    ],
)
def test_bad_bootstrap_names_the_field(bootstrap: dict[str, object], path: str) -> None:
    with pytest.raises(_core.ConfigError) as info:
        _core.Proxy(json.dumps(bootstrap))
    error = info.value
    assert error.path == path or (not path and "colour" in error.message)
    expected = f"{error.path}: {error.message}" if error.path else error.message
    assert str(error) in (expected, f"{error.path}: {error.message}")


def test_bad_snapshot_names_the_field_and_changes_nothing() -> None:
    proxy = _core.Proxy(json.dumps({"admin": None, "workers": 1}))
    try:
        good = {"clusters": [{"name": "b", "endpoints": []}]}
        assert proxy.apply(json.dumps(good)) == 1
        with pytest.raises(_core.ConfigError) as info:
            proxy.apply(json.dumps({"clusters": [{"name": "b", "lb": "random"}]}))
        assert info.value.path == "clusters[0].lb"
        assert str(info.value) == f"clusters[0].lb: {info.value.message}"
        assert proxy.stats()["version"] == 1
    finally:
        proxy.shutdown(0.0)


def test_not_json_is_a_config_error() -> None:
    with pytest.raises(_core.ConfigError):
        _core.Proxy("{")


def test_regex_problem_says_what_the_data_plane_refuses() -> None:
    assert _core.regex_problem("/v[0-9]+/.*") is None
    assert "unclosed group" in (_core.regex_problem("/a(") or "")
    assert "look-around" in (_core.regex_problem("(?=a)a") or "")
    assert "too large" in (_core.regex_problem("(\\w{100}){100}") or "")
