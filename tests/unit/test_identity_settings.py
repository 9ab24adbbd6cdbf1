"""Settings of the certificate authority: trust domain, certificate lifetime and rate."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from meshpy.ca.spiffeid import is_spiffe_id, workload_id
from meshpy.settings import Settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MESHPY_TRUST_DOMAIN", "MESHPY_CERT_TTL", "MESHPY_HOME"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.trust_domain, settings.cert_ttl) == ("meshpy.local", 86400.0)
    assert (settings.cert_rate, settings.cert_burst) == (20.0, 20)
    assert settings.ca_dir == Path(".meshpy/ca")
    monkeypatch.setenv("MESHPY_TRUST_DOMAIN", "prod_1.example-corp")
    monkeypatch.setenv("MESHPY_CERT_TTL", "30s")
    monkeypatch.setenv("MESHPY_CERT_RATE", "6")
    settings = Settings()
    assert (settings.trust_domain, settings.cert_ttl, settings.cert_rate) == (
        "prod_1.example-corp",
        30.0,
        6.0,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"trust_domain": "Meshpy.local"},
        {"trust_domain": "mesh/py"},
        {"trust_domain": "spiffe://meshpy.local"},
        {"trust_domain": ""},
        {"trust_domain": "a" * 256},
        {"cert_ttl": "500ms"},
        {"cert_ttl": "soon"},
        {"cert_rate": 0},
        {"cert_burst": 0},
    ],
)
def test_invalid(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate(bad)


def test_spiffe_ids() -> None:
    assert workload_id("meshpy.local", "default", "cart") == (
        "spiffe://meshpy.local/ns/default/sa/cart"
    )
    assert is_spiffe_id("spiffe://meshpy.local/ns/default/sa/cart")
    for bad in (
        "spiffe://meshpy.local",
        "spiffe://meshpy.local/",
        "spiffe://meshpy.local/a//b",
        "spiffe://meshpy.local/a/../b",
        "spiffe://Meshpy.local/a",
        "spiffe://user@meshpy.local/a",
        "spiffe://meshpy.local:8080/a",
        "spiffe://meshpy.local/a?b",
        "https://meshpy.local/a",
    ):
        assert not is_spiffe_id(bad), bad
