"""Server settings: defaults, MESHPY_* variables, durations."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from meshpy.settings import Settings, parse_listen


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("MESHPY_HOME", "MESHPY_DB_URL", "MESHPY_LISTEN", "MESHPY_LEASE_TTL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.home == Path(".meshpy")
    assert settings.database_url == f"sqlite:///{tmp_path}/.meshpy/meshpy.db"
    assert settings.listen == "127.0.0.1:15010"
    assert (settings.lease_ttl, settings.renew_interval) == (15.0, 5.0)
    assert settings.removal_grace == 60.0
    assert settings.health_threshold == 2
    assert settings.admin_token_file == Path(".meshpy/admin-token")


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHPY_HOME", "/var/lib/meshpy")
    monkeypatch.setenv("MESHPY_DB_URL", "postgresql://u:p@db/meshpy")
    monkeypatch.setenv("MESHPY_LEASE_TTL", "1500ms")
    monkeypatch.setenv("MESHPY_REMOVAL_GRACE", "2m")
    monkeypatch.setenv("MESHPY_RENEW_EVERY", "0.5")
    monkeypatch.setenv("MESHPY_TOKEN", "a client setting, ignored here")
    settings = Settings()
    assert settings.database_url == "postgresql://u:p@db/meshpy"
    assert settings.server_url_file == Path("/var/lib/meshpy/server-url")
    assert (settings.lease_ttl, settings.removal_grace, settings.renew_interval) == (1.5, 120, 0.5)


@pytest.mark.parametrize(
    "bad",
    [{"listen": "nowhere"}, {"listen": "1.2.3.4:99999"}, {"lease_ttl": "0s"}, {"lease_ttl": "x"}],
)
def test_invalid(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate(bad)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:15010") == ("::1", 15010)


def test_mtls_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHPY_MTLS", raising=False)
    assert Settings().mtls == "strict"
    monkeypatch.setenv("MESHPY_MTLS", "PERMISSIVE")
    assert Settings().mtls == "permissive"
    monkeypatch.setenv("MESHPY_MTLS", "off")
    with pytest.raises(ValidationError, match="'strict', 'permissive' or 'disabled'"):
        Settings()


def test_authz_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHPY_AUTHZ_DEFAULT", raising=False)
    assert Settings().authz_default == "all-unauthenticated"
    monkeypatch.setenv("MESHPY_AUTHZ_DEFAULT", "All-Authenticated")
    assert Settings().authz_default == "all-authenticated"
    monkeypatch.setenv("MESHPY_AUTHZ_DEFAULT", "allow")
    with pytest.raises(ValidationError, match="'all-unauthenticated', 'all-authenticated' or"):
        Settings()


def test_trace_store_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RETENTION", "MAX_SPANS", "MAX_BODY", "RATE", "BURST"):
        monkeypatch.delenv(f"MESHPY_TRACE_{name}", raising=False)
    defaults = Settings()
    assert (defaults.trace_retention, defaults.trace_max_spans) == (86400.0, 1_000_000)
    assert (defaults.trace_max_body, defaults.trace_rate, defaults.trace_burst) == (
        4 * 1024 * 1024,
        50.0,
        100,
    )
    monkeypatch.setenv("MESHPY_TRACE_RETENTION", "2h")
    monkeypatch.setenv("MESHPY_TRACE_MAX_SPANS", "5000")
    monkeypatch.setenv("MESHPY_TRACE_MAX_BODY", "65536")
    monkeypatch.setenv("MESHPY_TRACE_RATE", "5")
    monkeypatch.setenv("MESHPY_TRACE_BURST", "10")
    settings = Settings()
    assert (settings.trace_retention, settings.trace_max_spans) == (7200.0, 5000)
    assert (settings.trace_max_body, settings.trace_rate, settings.trace_burst) == (65536, 5.0, 10)
    for bad in ({"trace_max_spans": 0}, {"trace_max_body": 10}, {"trace_retention": "0s"}):
        with pytest.raises(ValidationError):
            Settings.model_validate(bad)


def test_trace_sampling_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHPY_TRACE_SAMPLE_PERCENT", raising=False)
    assert Settings().trace_sample_percent == 1.0
    monkeypatch.setenv("MESHPY_TRACE_SAMPLE_PERCENT", "12.5")
    assert Settings().trace_sample_percent == 12.5
    for bad in ("-1", "100.5", "all"):
        monkeypatch.setenv("MESHPY_TRACE_SAMPLE_PERCENT", bad)
        with pytest.raises(ValidationError):
            Settings()
