"""``meshpy identity``: the certificate authority, its root rotation, and issued certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api, fail, narrate
from meshpy.cli._output import OUTPUT_OPTION, Format, emit, table

__all__ = ["app", "describe_ca", "describe_certificate"]

app = typer.Typer(
    help="Workload identities: the certificate authority and the certificates it issued.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
ca_app = typer.Typer(
    help="The certificate authority: make it, show it, rotate its root.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(ca_app, name="ca")


@app.callback()
def _group() -> None:
    """Workload identities: the certificate authority and the certificates it issued."""


@ca_app.callback()
def _ca_group() -> None:
    """The certificate authority: make it, show it, rotate its root."""


def _file_option(flag: str, text: str) -> Any:
    return typer.Option(None, flag, metavar="FILE", help=text)


@ca_app.command("init")
def init(
    root_cert: Path | None = _file_option("--root-cert", "Your root certificate (PEM)."),
    root_key: Path | None = _file_option(
        "--root-key", "Its private key (PEM, unencrypted): meshpy makes the intermediate."
    ),
    intermediate_cert: Path | None = _file_option(
        "--intermediate-cert", "Your intermediate, signed by --root-cert (PEM)."
    ),
    intermediate_key: Path | None = _file_option(
        "--intermediate-key", "The intermediate's private key (PEM, unencrypted)."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Replace the CA there is. Certificates it issued stop being trusted as "
        "sidecars renew, so expect failed connections until all have.",
    ),
    trust_domain: str | None = typer.Option(
        None,
        "--trust-domain",
        metavar="NAME",
        help="SPIFFE trust domain [default: MESHPY_TRUST_DOMAIN or meshpy.local].",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Data directory [default: MESHPY_HOME or ./.meshpy].",
    ),
) -> None:
    """Make the certificate authority in <data dir>/ca, offline, before the server starts.

    Without files: a new root (ECDSA P-256, 10 years) and intermediate (1 year); the
    server does the same on its first start if there is no CA. With --root-cert and
    --root-key: your root; meshpy makes the intermediate. With --root-cert,
    --intermediate-cert and --intermediate-key: your intermediate, signed by your root,
    whose key meshpy never sees (such a CA cannot be rotated by meshpy). Keys are stored
    mode 0600.

    Several servers on one PostgreSQL must use the same CA: give them the same data
    directory's ca/ (a shared volume; then `meshpy identity ca rotate` reaches all of
    them), or initialise each from the same files.
    """
    from meshpy.ca.authority import CAError, initialise
    from meshpy.cli.server import server_settings

    settings = server_settings(home=data_dir, trust_domain=trust_domain)
    try:
        ca = initialise(
            settings.ca_dir,
            settings.trust_domain,
            force=force,
            root_cert=root_cert,
            root_key=root_key,
            intermediate_cert=intermediate_cert,
            intermediate_key=intermediate_key,
        )
    except CAError as exc:
        fail(str(exc))
    from meshpy.ca.certs import fingerprint

    root = ca.roots[0]
    origin = "your" if root_cert else "new"
    narrate(f"certificate authority for {ca.trust_domain} in {settings.ca_dir}")
    narrate(
        f"  {origin} root          {fingerprint(root.certificate)}  until "
        f"{root.certificate.not_valid_after_utc.isoformat()}"
    )
    origin = "your" if intermediate_cert else "new"
    narrate(
        f"  {origin} intermediate  {fingerprint(ca.intermediate)}  until "
        f"{ca.intermediate.not_valid_after_utc.isoformat()}"
    )


@ca_app.command("show")
def show(
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Show the trust domain, the roots and their states, the signing intermediate, and the
    root rotation's phase."""
    emit(Api(server, token).json("GET", "/api/v1/identity/ca"), output, describe_ca)


@ca_app.command("rotate")
def rotate(
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Start a root rotation that drops no traffic.

    A new root and intermediate are made and the new root joins the trust bundle at
    once, while the old intermediate keeps signing. One certificate lifetime later
    (MESHPY_CERT_TTL), when every sidecar has renewed and trusts the new root, signing
    moves to the new intermediate; one more lifetime later the old root leaves the
    bundle. Both steps happen by themselves.
    """
    data = Api(server, token).json("POST", "/api/v1/identity/ca/rotate")
    rotation = data["rotation"]
    narrate(
        f"rotation started: signing moves to the new intermediate at "
        f"{rotation['signing_switch_at']}; the old root leaves the bundle at "
        f"{rotation['old_root_removed_at']}"
    )
    emit(data, output, describe_ca)


@app.command("inspect")
def inspect(
    instance: str = typer.Argument(..., metavar="INSTANCE", help="An instance id."),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Show the latest certificate issued to an instance: identity, chain and expiry."""
    params = {"instance": instance, "limit": 1}
    found = Api(server, token).json("GET", "/api/v1/identity/certificates", params=params)
    if not found["items"]:
        fail(f"no certificate was issued to instance {instance}")
    emit(found["items"][0], output, describe_certificate)


def describe_ca(ca: Any) -> str:
    """The ``meshpy identity ca show`` text."""
    from datetime import timedelta

    from meshpy.durations import format_duration

    rotation = ca["rotation"]
    phase = rotation["phase"]
    if phase != "stable":
        phase += (
            f" (started {rotation['started_at']}; signing moves at "
            f"{rotation['signing_switch_at']}; the old root leaves at "
            f"{rotation['old_root_removed_at']})"
        )
    elif rotation["started_at"]:
        phase += (
            f" (last rotation started {rotation['started_at']}, completed "
            f"{rotation['old_root_removed_at']})"
        )
    ttl = timedelta(seconds=round(ca["cert_ttl_s"] * 1000) / 1000)
    lines = [
        f"Trust domain:    {ca['trust_domain']}",
        f"Leaf lifetime:   {format_duration(ttl)}",
        f"Rotation:        {phase}",
    ]
    roots = [
        (
            r["generation"],
            r["state"],
            r["not_after"],
            "held" if r["key_held"] else "external",
            r["fingerprint_sha256"],
        )
        for r in ca["roots"]
    ]
    inter = ca["intermediate"]
    rows = [(inter["generation"], inter["subject"], inter["serial"], inter["not_after"])]
    text = "\n".join(lines) + "\nRoots (trust bundle):\n"
    text += _indent(table(["GENERATION", "STATE", "NOT-AFTER", "KEY", "FINGERPRINT-SHA256"], roots))
    text += "Signing intermediate:\n"
    text += _indent(table(["GENERATION", "SUBJECT", "SERIAL", "NOT-AFTER"], rows))
    return text


def describe_certificate(record: Any) -> str:
    """The ``meshpy identity inspect`` text."""
    lines = [
        f"Instance:    {record['instance']}",
        f"Identity:    {record['identity']}",
        f"Service:     {record['namespace']}/{record['service']}",
        f"Serial:      {record['serial']}",
        f"Issued:      {record['issued_at']}",
        f"Not before:  {record['not_before']}",
        f"Not after:   {record['not_after']}",
    ]
    rows = [
        (i, c["subject"], c["issuer"], c["serial"], c["not_after"])
        for i, c in enumerate(record["chain"])
    ]
    text = "\n".join(lines) + "\nChain:\n"
    return text + _indent(table(["#", "SUBJECT", "ISSUER", "SERIAL", "NOT-AFTER"], rows))


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())
