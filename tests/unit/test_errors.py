"""Every public exception of meshpy derives from meshpy.errors.MeshpyError, the core's too."""

from __future__ import annotations

import importlib
import inspect

from meshpy import _core
from meshpy.errors import MeshpyError
from tests.meshpy_code import meshpy_modules


def public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in meshpy_modules():
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("meshpy")
                and not attribute.startswith("_")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_public_exception_derives_from_the_one_base() -> None:
    exceptions = public_exceptions()
    assert len(exceptions) >= 15, sorted(exceptions)  # the walk found them
    strays = sorted(name for name, cls in exceptions.items() if not issubclass(cls, MeshpyError))
    assert strays == []


def test_the_base_is_the_data_planes_and_keeps_the_builtin_kinds() -> None:
    from meshpy.ca.certs import CertificateError
    from meshpy.resources import ResourceError
    from meshpy.snapshot import UnknownInstanceError

    assert MeshpyError is _core.MeshpyError
    assert issubclass(_core.ConfigError, MeshpyError)
    assert issubclass(CertificateError, ValueError)
    assert issubclass(ResourceError, ValueError)
    assert issubclass(UnknownInstanceError, LookupError)
