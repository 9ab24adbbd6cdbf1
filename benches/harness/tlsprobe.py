"""Probing an mTLS listener: does it serve the backend as SERVER_ID, and refuse a bare client?"""

from __future__ import annotations

import http.client
import ssl

from harness.backend import BODY
from harness.identities import SERVER_ID, Pki
from harness.ready import Probe


def client_context(pki: Pki, *, with_cert: bool = True) -> ssl.SSLContext:
    """TLS 1.3 client context that trusts the root; host names are not checked (SPIFFE)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(pki.root)
    if with_cert:
        ctx.load_cert_chain(pki.client.chain, pki.client.key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def peer_uri(sock: ssl.SSLSocket) -> str:
    """The URI SAN of the peer's verified certificate, "" if none."""
    sans = (sock.getpeercert() or {}).get("subjectAltName", ())
    uris = [pair[1] for pair in sans if isinstance(pair, tuple) and pair[0] == "URI"]
    return str(uris[0]) if uris else ""


def tls_get(port: int, ctx: ssl.SSLContext) -> tuple[int | None, str, str]:
    """(status, body, server's URI SAN) of one GET over TLS; status None on failure."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2.0, context=ctx)
    try:
        conn.connect()
        uri = peer_uri(conn.sock) if isinstance(conn.sock, ssl.SSLSocket) else ""
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace"), uri
    except (OSError, http.client.HTTPException) as err:
        return None, str(err), ""
    finally:
        conn.close()


def probe_mtls(port: int, pki: Pki) -> Probe:
    """A probe: None once the mTLS listener serves the backend as SERVER_ID."""
    ctx = client_context(pki)

    def probe() -> str | None:
        status, body, uri = tls_get(port, ctx)
        if status == 200 and body == BODY and uri == SERVER_ID:
            return None
        return f"mTLS GET :{port} gave {status} {body[:60]!r}, server ID {uri!r}"

    return probe


def check_client_cert_required(name: str, port: int, pki: Pki) -> None:
    """A request without a client certificate must not get through."""
    status, _, _ = tls_get(port, client_context(pki, with_cert=False))
    if status is not None:
        raise RuntimeError(f"{name}: answered {status} to a client without a certificate")
