"""meshpy: a service mesh you can pip install, with a Rust data plane driven from Python."""

from meshpy._core import __version__

__all__ = ["__version__"]
