"""Settings of the control plane, read from ``MESHPY_*`` environment variables and flags.

Every duration is a number of seconds or a duration string ("500ms", "15s", "1m").
``Settings()`` reads the environment once; nothing here is a module-level singleton, so
tests and embedders build as many as they like.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from meshpy.authz import AuthzDefault
from meshpy.ca.spiffeid import check_trust_domain
from meshpy.durations import parse_seconds
from meshpy.snapshot import MtlsMode

__all__ = ["DEFAULT_LISTEN", "Settings", "parse_listen"]

DEFAULT_LISTEN = "127.0.0.1:15010"


def _seconds(value: object) -> object:
    return parse_seconds(value) if isinstance(value, str) else value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0, lt=1e7)]
"""Seconds as a float; accepts "500ms", "15s", "1m" too."""


def parse_listen(value: str) -> tuple[str, int]:
    """Split "HOST:PORT" (IPv6 as "[::1]:PORT") into a host and a port; raise ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"invalid listen address {value!r}: use HOST:PORT, e.g. {DEFAULT_LISTEN}"
        raise ValueError(msg)
    return host.removeprefix("[").removesuffix("]"), int(port)


def _lowercase(value: object) -> object:
    """``STRICT`` and ``strict`` alike, as users write modes both ways."""
    return value.lower() if isinstance(value, str) else value


class Settings(BaseSettings):
    """What ``meshpy server`` needs to run; ``MESHPY_<FIELD>`` sets a field from the environment."""

    model_config = SettingsConfigDict(env_prefix="MESHPY_", extra="ignore", frozen=True)

    home: Path = Field(
        default=Path(".meshpy"),
        description="Data directory: SQLite database, admin-token and server-url files.",
    )
    db_url: str = Field(
        default="",
        description="SQLAlchemy URL of the registry; empty means sqlite:///<home>/meshpy.db. "
        "PostgreSQL: postgresql://user:password@host/db (driven by psycopg).",
    )
    listen: str = Field(default=DEFAULT_LISTEN, description="HOST:PORT of the REST API.")
    lease_ttl: Seconds = Field(
        default=15.0,
        description="An instance that does not renew its lease for this long becomes unhealthy.",
    )
    renew_every: Seconds | None = Field(
        default=None, description="How often instances are told to renew; default lease_ttl / 3."
    )
    removal_grace: Seconds = Field(
        default=60.0, description="An expired instance is removed this long after its lease ended."
    )
    health_threshold: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Consecutive health reports needed to flip healthy <-> unhealthy.",
    )
    reaper_interval: Seconds = Field(
        default=1.0, description="How often expired leases are looked for."
    )
    db_timeout: Seconds = Field(
        default=4.0,
        description="Longest a request waits for the database before it gets a 503 "
        "(connect and statement timeouts are derived from it).",
    )
    db_workers: int = Field(
        default=16, ge=1, le=256, description="Threads (and pooled connections) for database work."
    )
    change_poll_interval: Seconds = Field(
        default=0.2,
        description="SQLite: how often the revision is polled to notice other processes' changes.",
    )
    trust_domain: str = Field(
        default="meshpy.local",
        description="SPIFFE trust domain of the mesh: workloads are "
        "spiffe://<trust_domain>/ns/<namespace>/sa/<service>.",
    )
    cert_ttl: Seconds = Field(
        default=86400.0,
        description="Lifetime of the workload certificates the CA issues (never past its "
        "intermediate's); also the length of each phase of a root rotation.",
    )
    cert_rate: float = Field(
        default=20.0,
        gt=0,
        le=1e6,
        description="Certificates one join token may get per minute, on average.",
    )
    cert_burst: int = Field(
        default=20, ge=1, le=100_000, description="Certificates one join token may get at once."
    )
    mtls: Annotated[MtlsMode, BeforeValidator(_lowercase)] = Field(
        default="strict",
        description="Sidecar inbound mTLS: strict (mTLS only), permissive (plaintext "
        "accepted too), or disabled (plaintext between sidecars: development only).",
    )
    authz_default: Annotated[AuthzDefault, BeforeValidator(_lowercase)] = Field(
        default="all-unauthenticated",
        description="Who may call a service when no AuthorizationPolicy decides: "
        "all-unauthenticated (everyone), all-authenticated (callers with a verified mTLS "
        "identity), or deny (nobody). ALLOW policies on a service replace it.",
    )
    cert_retention: Seconds = Field(
        default=7 * 86400.0,
        description="Records of issued certificates are kept this long after they expire.",
    )
    trace_sample_percent: float = Field(
        default=1.0,
        ge=0.0,
        le=100.0,
        description="Share (0 to 100) of the traces that start at a sidecar that are sampled "
        "and recorded; a request that continues a trace keeps its caller's decision, and "
        "a failed request is recorded whatever the sampling.",
    )
    trace_retention: Seconds = Field(
        default=86400.0, description="Spans are kept this long after they started."
    )
    trace_max_spans: int = Field(
        default=1_000_000,
        ge=1,
        le=1_000_000_000,
        description="The trace store keeps at most this many spans, dropping the oldest.",
    )
    trace_max_body: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=512 * 1024 * 1024,
        description="Largest OTLP export body accepted, in bytes (after gunzip too); "
        "larger ones get a 413.",
    )
    trace_rate: float = Field(
        default=50.0,
        gt=0,
        le=1e6,
        description="OTLP exports one token may send per second, on average (else a 429).",
    )
    trace_burst: int = Field(
        default=100, ge=1, le=100_000, description="OTLP exports one token may send at once."
    )

    @field_validator("trust_domain")
    @classmethod
    def _check_trust_domain(cls, value: str) -> str:
        return check_trust_domain(value)

    @field_validator("cert_ttl")
    @classmethod
    def _check_cert_ttl(cls, value: float) -> float:
        if value < 1:
            msg = "certificates must live 1s at least"
            raise ValueError(msg)
        return value

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def database_url(self) -> str:
        """The registry URL: ``db_url``, or the SQLite file in ``home``."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.home / 'meshpy.db').resolve()}"

    @property
    def admin_token_file(self) -> Path:
        """Where the admin token is kept (mode 0600), created on the first start."""
        return self.home / "admin-token"

    @property
    def ca_dir(self) -> Path:
        """The certificate authority's files (mode 0700; keys 0600)."""
        return self.home / "ca"

    @property
    def server_url_file(self) -> Path:
        """Where a running server writes its URL, for the CLI to find it."""
        return self.home / "server-url"

    @property
    def renew_interval(self) -> float:
        """Seconds between lease renewals that instances are told to keep."""
        return self.renew_every if self.renew_every is not None else self.lease_ttl / 3
